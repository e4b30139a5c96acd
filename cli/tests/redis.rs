//! The `latchkey` binary against a real Redis: the stores are populated
//! through the library (a `StoreManager` over a `RedisStore`) and the
//! commands run on them with `--store redis:URL`.
//!
//! Every test that needs a server is `#[ignore]`d with the reason, so a
//! machine without Redis says "ignored" instead of passing them. To run
//! them, point `LATCHKEY_REDIS_URL` at a `redis://` server you can scribble
//! on and ask for them (`.ci/run` does, against a server of its own):
//!
//! ```text
//! LATCHKEY_REDIS_URL=redis://127.0.0.1:6379/ cargo test -p latchkey-cli --features redis --test redis -- --include-ignored
//! ```
//!
//! Asked for without the URL they fail. The tool has no option for a key
//! prefix (it uses the library's default, `latchkey:`), so each test works
//! in a logical database of its own, chosen in the URL's path (1 to 5; the
//! URL's own path is replaced), and under user names no other run uses.
//! Nothing is flushed: the sessions they create expire by themselves within
//! minutes, and `purge` deletes only records already expired.
//!
//! The tests at the end need no server (an unreachable URL, and the
//! file-only commands refusing a Redis store) and always run.
#![cfg(feature = "redis")]

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use latchkey::{
    Clock as _, Issued, ManualClock, NewSession, Policy, RedisStore, SessionId,
    SessionManager as _, Store as _, StoreKey, StoreManager, SystemClock, Timestamp,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");
const URL_VAR: &str = "LATCHKEY_REDIS_URL";

/// A password the tests put in URLs, which must never be printed.
const PASSWORD: &str = "s3cret-latchkey-pw";

/// The Redis these tests run against. Asked for (`--include-ignored`)
/// without a URL, they fail here. The URL itself is not quoted in any
/// message: it may hold a password.
fn base_url() -> String {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{URL_VAR} is unset: the CLI's Redis tests need a Redis server \
             (set {URL_VAR}=redis://HOST:PORT/ and pass --include-ignored; see cli/tests/redis.rs)"
        ),
    }
}

/// `LATCHKEY_REDIS_URL` with its path replaced by database `db`, and with
/// `userinfo` (`user:password@`) if the URL had none.
fn db_url(db: u8, userinfo: Option<&str>) -> String {
    let base = base_url();
    let Some((scheme, rest)) = base.split_once("://") else {
        panic!("{URL_VAR} is not a redis:// URL");
    };
    assert!(
        scheme == "redis" || scheme == "rediss",
        "{URL_VAR} must be a redis:// URL: the tests choose a database in its path"
    );
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    assert!(!authority.is_empty(), "{URL_VAR} has no host");
    match userinfo {
        Some(info) if !authority.contains('@') => format!("{scheme}://{info}@{authority}/{db}"),
        _ => format!("{scheme}://{authority}/{db}"),
    }
}

/// Short deadlines, so what the tests leave behind expires within minutes.
fn policy() -> Policy {
    Policy::builder()
        .with_idle_timeout(Duration::from_secs(300))
        .with_absolute_timeout(Duration::from_secs(3600))
        .build()
        .expect("policy")
}

/// Runs the binary with `args`.
fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 stdout")
}

fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", all_output(out)))
}

fn now() -> Timestamp {
    SystemClock.now()
}

/// The store key of an issued session (its Redis key names it).
fn key_of(issued: &Issued) -> StoreKey {
    SessionId::parse(issued.token())
        .expect("an issued token parses")
        .store_key()
}

/// A database of the test's own, a manager over it, and user names no
/// other run uses.
struct Fixture {
    url: String,
    tag: String,
    manager: StoreManager<RedisStore>,
}

impl Fixture {
    fn new(db: u8) -> Fixture {
        Fixture::with_url(db_url(db, None))
    }

    fn with_url(url: String) -> Fixture {
        let store = RedisStore::open(&url).expect("a Redis URL");
        store.ping().expect("the Redis server answers");
        Fixture {
            url,
            tag: SessionId::generate().fingerprint().to_string(),
            manager: StoreManager::new(store).with_policy(policy()),
        }
    }

    /// `--store`'s value, in the `redis:URL` form.
    fn spec(&self) -> String {
        format!("redis:{}", self.url)
    }

    /// A user name unique to this run.
    fn user(&self, name: &str) -> String {
        format!("{name}-{}", self.tag)
    }

    /// A manager (and its store) whose clock is an hour behind: the records
    /// it writes are past their idle deadline by the system clock the tool
    /// reads with, yet Redis keeps them for the policy's idle timeout,
    /// because it expires them by the store's clock. They are what
    /// `purge` is for.
    fn past(&self) -> (StoreManager<RedisStore>, Timestamp) {
        let then = now().saturating_sub(Duration::from_secs(3600));
        let store = RedisStore::open(&self.url)
            .expect("a Redis URL")
            .with_clock(Arc::new(ManualClock::new(then)));
        (StoreManager::new(store).with_policy(policy()), then)
    }
}

// ---- sessions ----------------------------------------------------------------

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn sessions_lists_a_users_live_sessions_with_deadlines() {
    let fx = Fixture::new(1);
    let (alice, bob, carol) = (fx.user("alice"), fx.user("bob"), fx.user("carol"));
    let phone = fx
        .manager
        .create(NewSession::new().with_user(&alice).with_device("phone"))
        .expect("phone");
    let laptop = fx
        .manager
        .create(
            NewSession::new()
                .with_user(&alice)
                .with_device("laptop\x1b[31m"),
        )
        .expect("laptop");
    fx.manager
        .create(NewSession::new().with_user(&bob))
        .expect("bob");
    // Expired by the system clock, though Redis still holds it.
    let (past, then) = fx.past();
    past.create_at(NewSession::new().with_user(&alice), then)
        .expect("expired");
    assert_eq!(
        fx.manager
            .store()
            .sessions_of(&alice)
            .expect("listed")
            .len(),
        3,
        "Redis holds the expired record too"
    );

    let out = run(&[
        "--json",
        "sessions",
        "--store",
        &fx.spec(),
        "--user",
        &alice,
    ]);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["user"], alice.as_str());
    let list = v["sessions"].as_array().expect("array");
    let mut got: Vec<String> = list
        .iter()
        .map(|s| s["fingerprint"].as_str().expect("fp").to_owned())
        .collect();
    got.sort();
    let mut expected = vec![
        phone.fingerprint().to_string(),
        laptop.fingerprint().to_string(),
    ];
    expected.sort();
    assert_eq!(got, expected);
    for s in list {
        for field in [
            "created_at",
            "last_seen",
            "idle_deadline",
            "absolute_deadline",
        ] {
            assert!(
                s[field].as_str().is_some_and(|t| t.ends_with('Z')),
                "{field}: {s}"
            );
        }
        assert!(s["idle_deadline"].as_str() <= s["absolute_deadline"].as_str());
        assert!(
            s["store_key"]
                .as_str()
                .is_some_and(|k| k.starts_with(s["fingerprint"].as_str().expect("fp")))
        );
    }

    // The table, with the bare-URL form of --store.
    let out = run(&["sessions", "--store", &fx.url, "--user", &alice]);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let text = stdout(&out);
    assert!(
        text.contains("FINGERPRINT") && text.contains("phone"),
        "{text}"
    );
    assert!(text.contains(&phone.fingerprint().to_string()));
    assert!(text.contains(&laptop.fingerprint().to_string()));
    // A device label's escape sequence is shown escaped, never sent raw.
    assert!(
        !text.contains('\x1b') && text.contains("laptop\\u{1b}[31m"),
        "{text}"
    );
    assert!(!text.contains(phone.token()) && !text.contains(laptop.token()));

    let out = run(&["sessions", "--store", &fx.spec(), "--user", &carol]);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    assert!(stdout(&out).contains("no live sessions"));
    let out = run(&[
        "--json",
        "sessions",
        "--store",
        &fx.spec(),
        "--user",
        &carol,
    ]);
    assert_eq!(json(&out)["sessions"], Value::Array(vec![]));
}

// ---- revoke ------------------------------------------------------------------

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn revoke_by_fingerprint_ends_only_that_session() {
    let fx = Fixture::new(2);
    let alice = fx.user("alice");
    let phone = fx
        .manager
        .create(NewSession::new().with_user(&alice))
        .expect("phone");
    let laptop = fx
        .manager
        .create(NewSession::new().with_user(&alice))
        .expect("laptop");
    let fp = phone.fingerprint().to_string();

    // A Redis store cannot be searched by fingerprint: --user is needed.
    let out = run(&[
        "--json",
        "revoke",
        "--store",
        &fx.spec(),
        "--fingerprint",
        &fp,
    ]);
    assert_eq!(code(&out), 2, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["error"]["kind"], "usage");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("give --user")),
        "{v}"
    );
    assert!(fx.manager.load(phone.token()).is_ok());

    let out = run(&[
        "--json",
        "revoke",
        "--store",
        &fx.spec(),
        "--fingerprint",
        &fp,
        "--user",
        &alice,
    ]);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["user"], alice.as_str());
    assert_eq!(v["ended"], serde_json::json!([fp]));
    assert!(fx.manager.load(phone.token()).is_err());
    assert!(fx.manager.load(laptop.token()).is_ok());

    // Again: nothing live by that name any more.
    let out = run(&[
        "--json",
        "revoke",
        "--store",
        &fx.spec(),
        "--fingerprint",
        &fp,
        "--user",
        &alice,
    ]);
    assert_eq!(code(&out), 1, "{}", all_output(&out));
    assert_eq!(json(&out)["error"]["kind"], "not_found");

    // Another user's name never reaches alice's session.
    let laptop_fp = laptop.fingerprint().to_string();
    let out = run(&[
        "revoke",
        "--store",
        &fx.spec(),
        "--fingerprint",
        &laptop_fp,
        "--user",
        &fx.user("mallory"),
    ]);
    assert_eq!(code(&out), 1, "{}", all_output(&out));
    assert!(fx.manager.load(laptop.token()).is_ok());

    // The table form.
    let out = run(&[
        "revoke",
        "--store",
        &fx.spec(),
        "--fingerprint",
        &laptop_fp,
        "--user",
        &alice,
    ]);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    assert_eq!(
        stdout(&out).trim_end(),
        format!("ended session {laptop_fp} of {alice}")
    );
    assert!(fx.manager.load(laptop.token()).is_err());
}

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn revoke_by_user_with_except_keeps_that_session() {
    let fx = Fixture::new(3);
    let (alice, bob) = (fx.user("alice"), fx.user("bob"));
    let a = fx
        .manager
        .create(NewSession::new().with_user(&alice))
        .expect("a");
    let b = fx
        .manager
        .create(NewSession::new().with_user(&alice))
        .expect("b");
    let c = fx
        .manager
        .create(NewSession::new().with_user(&alice))
        .expect("c");
    let bob_session = fx
        .manager
        .create(NewSession::new().with_user(&bob))
        .expect("bob");

    // A mistyped --except ends nothing.
    let out = run(&[
        "revoke",
        "--store",
        &fx.spec(),
        "--user",
        &alice,
        "--except",
        "000000000000",
    ]);
    assert_eq!(code(&out), 1, "{}", all_output(&out));
    assert!(all_output(&out).contains("nothing was ended"));
    for s in [&a, &b, &c] {
        assert!(fx.manager.load(s.token()).is_ok());
    }

    let keep = b.fingerprint().to_string();
    let out = run(&[
        "--json",
        "revoke",
        "--store",
        &fx.spec(),
        "--user",
        &alice,
        "--except",
        &keep,
    ]);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["user"], alice.as_str());
    assert_eq!(v["kept"], keep.as_str());
    let mut ended: Vec<String> = v["ended"]
        .as_array()
        .expect("ended")
        .iter()
        .map(|f| f.as_str().expect("fp").to_owned())
        .collect();
    ended.sort();
    let mut expected = vec![a.fingerprint().to_string(), c.fingerprint().to_string()];
    expected.sort();
    assert_eq!(ended, expected);
    assert!(fx.manager.load(a.token()).is_err());
    assert!(fx.manager.load(b.token()).is_ok());
    assert!(fx.manager.load(c.token()).is_err());
    assert!(fx.manager.load(bob_session.token()).is_ok());

    // Without --except: every session of the user, and only theirs.
    let out = run(&["revoke", "--store", &fx.spec(), "--user", &alice]);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("ended 1 session(s) of {alice}")) && text.contains(&keep),
        "{text}"
    );
    assert!(fx.manager.load(b.token()).is_err());
    assert!(fx.manager.load(bob_session.token()).is_ok());

    let out = run(&[
        "--json",
        "sessions",
        "--store",
        &fx.spec(),
        "--user",
        &alice,
    ]);
    assert_eq!(json(&out)["sessions"], Value::Array(vec![]));

    // Nothing left to end: still status 0, none ended.
    let out = run(&["--json", "revoke", "--store", &fx.spec(), "--user", &alice]);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    assert_eq!(json(&out)["ended"], Value::Array(vec![]));
}

// ---- purge -------------------------------------------------------------------

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn purge_deletes_expired_records_that_redis_still_holds() {
    let fx = Fixture::new(4);
    // This database is this test's own: a first purge clears what an
    // earlier, interrupted run may have left, so the counts below are exact.
    let out = run(&["--json", "purge", "--store", &fx.spec()]);
    assert_eq!(code(&out), 0, "{}", all_output(&out));

    let alice = fx.user("alice");
    let (past, then) = fx.past();
    let old: Vec<_> = (0..2)
        .map(|_| {
            past.create_at(NewSession::new().with_user(&alice), then)
                .expect("expired")
        })
        .collect();
    let live = fx
        .manager
        .create(NewSession::new().with_user(&alice))
        .expect("live");
    let store = fx.manager.store();
    for s in &old {
        assert!(store.get(&key_of(s)).expect("read").is_some());
    }

    let out = run(&["--json", "purge", "--store", &fx.spec()]);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["removed"], 2, "{v}");
    assert_eq!(v["skipped"], 0);
    assert_eq!(v["skips"], Value::Array(vec![]));
    for s in &old {
        assert!(store.get(&key_of(s)).expect("read").is_none());
    }
    assert!(fx.manager.load(live.token()).is_ok());
    let left = store.sessions_of(&alice).expect("listed");
    assert_eq!(left.len(), 1, "the user's set keeps only the live one");

    let out = run(&["purge", "--store", &fx.spec()]);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    assert_eq!(stdout(&out).trim_end(), "removed 0 expired records");
}

// ---- the URL is never printed -------------------------------------------------

#[test]
#[ignore = "needs a Redis server: set LATCHKEY_REDIS_URL and pass --include-ignored (.ci/run does)"]
fn the_url_and_its_password_are_never_printed() {
    // A password in the URL: `AUTH default PASSWORD` succeeds on a server
    // whose default user has no password (Redis 6 and later). A URL that
    // already has one keeps its own.
    let fx = Fixture::with_url(db_url(5, Some(&format!("default:{PASSWORD}"))));
    let secret = fx
        .url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(info, _)| info.split_once(':'))
        .map(|(_, password)| password.to_owned());
    let alice = fx.user("alice");
    let bob = fx.user("bob");
    let s = fx
        .manager
        .create(NewSession::new().with_user(&alice).with_device("phone"))
        .expect("session");
    let fp = s.fingerprint().to_string();
    let (past, then) = fx.past();
    past.create_at(NewSession::new().with_user(&alice), then)
        .expect("expired");

    let spec = fx.spec();
    // Each command runs twice, as a table and with --json: the statuses of
    // both runs (the first revoke by fingerprint ends the session, so the
    // second finds nothing).
    let commands: Vec<(Vec<&str>, [i32; 2])> = vec![
        (vec!["sessions", "--store", &spec, "--user", &alice], [0, 0]),
        (vec!["sessions", "--store", &fx.url, "--user", &bob], [0, 0]),
        (
            vec!["revoke", "--store", &spec, "--fingerprint", &fp],
            [2, 2],
        ),
        (
            vec![
                "revoke",
                "--store",
                &spec,
                "--user",
                &alice,
                "--except",
                "000000000000",
            ],
            [1, 1],
        ),
        (
            vec![
                "revoke",
                "--store",
                &spec,
                "--fingerprint",
                &fp,
                "--user",
                &bob,
            ],
            [1, 1],
        ),
        (vec!["purge", "--store", &spec], [0, 0]),
        (vec!["stats", "--store", &spec], [2, 2]),
        (vec!["check", &fx.url], [2, 2]),
        (
            vec![
                "revoke",
                "--store",
                &spec,
                "--fingerprint",
                &fp,
                "--user",
                &alice,
            ],
            [0, 1],
        ),
        (vec!["revoke", "--store", &spec, "--user", &alice], [0, 0]),
        (vec!["sessions", "--store", &spec, "--user", &alice], [0, 0]),
    ];
    for (args, expected) in &commands {
        for (json_flag, expected) in [(false, expected[0]), (true, expected[1])] {
            let mut argv: Vec<&str> = Vec::new();
            if json_flag {
                argv.push("--json");
            }
            argv.extend(args);
            let out = run(&argv);
            let text = all_output(&out);
            // Not "{argv:?}" in the messages: that would print the URL.
            assert_eq!(
                code(&out),
                expected,
                "{} (json: {json_flag}): {text}",
                args[0]
            );
            assert!(!text.contains(&fx.url), "{} printed the URL", args[0]);
            if let Some(secret) = &secret {
                assert!(!text.contains(secret), "{} printed the password", args[0]);
            }
            assert!(!text.contains(s.token()));
            if json_flag {
                json(&out);
            }
        }
    }
    assert!(fx.manager.load(s.token()).is_err(), "revoked above");
}

// ---- no server needed -----------------------------------------------------------

/// A URL nothing answers on, with a user and password.
const UNREACHABLE: &str = "redis://user:s3cret@127.0.0.1:1/";

#[test]
fn an_unreachable_redis_fails_every_command_without_printing_its_password() {
    let bare = UNREACHABLE;
    let prefixed = format!("redis:{UNREACHABLE}");
    let commands: Vec<Vec<&str>> = vec![
        vec!["sessions", "--store", bare, "--user", "alice"],
        vec!["sessions", "--store", &prefixed, "--user", "alice"],
        vec!["revoke", "--store", bare, "--user", "alice"],
        vec![
            "revoke",
            "--store",
            bare,
            "--user",
            "alice",
            "--except",
            "000000000000",
        ],
        vec![
            "revoke",
            "--store",
            bare,
            "--fingerprint",
            "000000000000",
            "--user",
            "alice",
        ],
        vec!["purge", "--store", bare],
        vec!["purge", "--store", &prefixed],
    ];
    for args in &commands {
        let out = run(args);
        let text = all_output(&out);
        assert_eq!(code(&out), 3, "{}: {text}", args[0]);
        assert!(text.contains("Redis store"), "{}: {text}", args[0]);
        assert!(!text.contains("s3cret"), "{}: {text}", args[0]);

        let mut argv = vec!["--json"];
        argv.extend(args);
        let out = run(&argv);
        assert_eq!(code(&out), 3, "{}: {}", args[0], all_output(&out));
        assert!(!all_output(&out).contains("s3cret"));
        let v = json(&out);
        assert_eq!(v["error"]["kind"], "store_unavailable", "{v}");
    }
}

#[test]
fn stats_and_check_refuse_a_redis_store_clearly() {
    let prefixed = format!("redis:{UNREACHABLE}");
    for store in [UNREACHABLE, prefixed.as_str()] {
        let out = run(&["stats", "--store", store]);
        let text = all_output(&out);
        assert_eq!(code(&out), 2, "{text}");
        assert!(
            text.contains("`stats` reads a file store's directory"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        let out = run(&["--json", "stats", "--store", store]);
        assert_eq!(code(&out), 2);
        assert_eq!(json(&out)["error"]["kind"], "usage");
        assert!(!all_output(&out).contains("s3cret"));

        // `check` takes a directory: a Redis URL there is refused by name,
        // not reported as a missing directory quoting the URL.
        for json_flag in [false, true] {
            let mut argv = vec!["check", store];
            if json_flag {
                argv.insert(0, "--json");
            }
            let out = run(&argv);
            let text = all_output(&out);
            assert_eq!(code(&out), 2, "{text}");
            assert!(
                text.contains("a Redis store has no files to check"),
                "{text}"
            );
            assert!(!text.contains("s3cret"), "{text}");
            if json_flag {
                assert_eq!(json(&out)["error"]["kind"], "usage");
            }
        }
    }
    // `check` has no --store: clap's error does not quote the URL either.
    let out = run(&["check", "--store", UNREACHABLE]);
    assert_eq!(code(&out), 2);
    assert!(!all_output(&out).contains("s3cret"));
}
