//! The `latchkey` binary against real file stores in temporary directories,
//! populated through the library (a `StoreManager` over a `FileStore`).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use latchkey::{
    Clock as _, Durability, FileStore, KeyRing, NewSession, SessionManager as _, StoreManager,
    SystemClock, TicketKey, TicketManager, Timestamp,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// Runs the binary with `args`, feeding `stdin` if given.
fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("stdin written");
    }
    child.wait_with_output().expect("the binary finishes")
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

/// A file store in a fresh temporary directory, and a manager over it.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    manager: StoreManager<FileStore>,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("store");
        let store = FileStore::open(&dir)
            .expect("store opens")
            .with_durability(Durability::DangerNoSync);
        Fixture {
            _tmp: tmp,
            dir,
            manager: StoreManager::new(store),
        }
    }

    fn spec(&self) -> String {
        format!("file:{}", self.dir.display())
    }

    /// The only user index file (the fixtures index one user).
    fn index_file(&self, user: &str) -> PathBuf {
        let hash: String = Sha256::digest(user.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.dir
            .join("users")
            .join(&hash[..2])
            .join(format!("{hash}.user"))
    }
}

fn now() -> Timestamp {
    SystemClock.now()
}

fn two_days_ago() -> Timestamp {
    now().saturating_sub(Duration::from_secs(2 * 24 * 3600))
}

fn ticket_manager(purpose: &str, id: u32, key: &TicketKey) -> TicketManager {
    TicketManager::new(purpose, KeyRing::new(id, key.clone())).expect("ticket manager")
}

fn write_key_file(dir: &Path, name: &str, lines: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, lines).expect("key file written");
    path
}

// ---- inspect ---------------------------------------------------------------

#[test]
fn inspect_valid_token_shows_fingerprint_and_store_key() {
    let fx = Fixture::new();
    let issued = fx.manager.create(NewSession::new()).expect("created");
    let token = issued.token().to_owned();
    let out = run(&["--json", "inspect", "-"], Some(&format!("{token}\n")));
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["kind"], "session_token");
    assert_eq!(v["valid"], true);
    assert_eq!(v["fingerprint"], issued.fingerprint().to_string());
    let key_hex = v["store_key"].as_str().expect("store key");
    assert!(key_hex.starts_with(&issued.fingerprint().to_string()));
    // The store key names the session's file.
    assert!(
        fx.dir
            .join("sessions")
            .join(&key_hex[..2])
            .join(format!("{key_hex}.session"))
            .exists()
    );
    assert!(!all_output(&out).contains(&token));
}

#[test]
fn inspect_malformed_token_names_the_parse_error_and_exits_1() {
    let token = latchkey::SessionId::generate().to_token();
    let near_miss = &token[..42];
    let out = run(&["--json", "inspect", "-"], Some(near_miss));
    assert_eq!(code(&out), 1);
    let v = json(&out);
    assert_eq!(v["valid"], false);
    assert_eq!(v["error"]["code"], "wrong_length");
    assert_eq!(
        v["error"]["message"],
        "the token has 42 bytes, not the 43 of a session ID"
    );

    let bad_char = format!("{}+", &token[..42]);
    let out = run(&["inspect", "-"], Some(&bad_char));
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains("outside the base64url alphabet"));
    assert!(!all_output(&out).contains(near_miss));
}

#[test]
fn inspect_ticket_without_a_key_is_labelled_unverified() {
    let key = TicketKey::generate();
    let manager = ticket_manager("__Host-session", 7, &key);
    let issued = manager
        .create(NewSession::new().with_user("alice").with_device("phone"))
        .expect("ticket");
    let ticket = issued.token().to_owned();
    assert!(ticket.starts_with("lk1."));

    let out = run(&["--json", "inspect", "-"], Some(&ticket));
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["kind"], "ticket");
    assert_eq!(v["well_formed"], true);
    assert_eq!(v["header"]["key_id"], 7);
    assert_eq!(v["header"]["version"], 1);
    assert_eq!(v["header"]["purpose_matches"], true);
    assert_eq!(v["claims"]["unverified"], true);
    assert_eq!(v["claims"]["user"], "alice");
    assert_eq!(v["claims"]["device"], "phone");
    assert_eq!(v["claims"]["fingerprint"], issued.fingerprint().to_string());
    assert!(v["verification"].is_null());

    let out = run(&["inspect", "-"], Some(&ticket));
    assert!(stdout(&out).contains("UNVERIFIED"), "{}", stdout(&out));
    assert!(!all_output(&out).contains(&ticket));
}

#[test]
fn inspect_ticket_with_the_right_key_verifies_under_its_key_id() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = TicketKey::generate();
    let ticket = ticket_manager("__Host-session", 7, &key)
        .create(NewSession::new().with_user("alice"))
        .expect("ticket")
        .token()
        .to_owned();
    let other = TicketKey::generate();
    let keys = write_key_file(
        tmp.path(),
        "ring",
        &format!(
            "# the ring\n3 {}\n7 {}\n",
            other.to_base64(),
            key.to_base64()
        ),
    );
    let keys = keys.to_str().expect("UTF-8 path");
    let out = run(
        &["--json", "inspect", "-", "--key-file", keys],
        Some(&ticket),
    );
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["verification"]["verified"], true);
    assert_eq!(v["verification"]["key_id"], 7);
    assert_eq!(v["verification"]["key_file_line"], 3);
    assert_eq!(v["claims"]["unverified"], false);
    let text = all_output(&out);
    assert!(!text.contains(&ticket));
    assert!(!text.contains(&key.to_base64()) && !text.contains(&other.to_base64()));
}

#[test]
fn inspect_ticket_with_a_wrong_key_says_why_it_does_not_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = TicketKey::generate();
    let ticket = ticket_manager("__Host-session", 7, &key)
        .create(NewSession::new())
        .expect("ticket")
        .token()
        .to_owned();

    // Key id 7, another key: bad signature.
    let wrong = write_key_file(
        tmp.path(),
        "wrong",
        &format!("7 {}\n", TicketKey::generate().to_base64()),
    );
    let out = run(
        &[
            "--json",
            "inspect",
            "-",
            "--key-file",
            wrong.to_str().expect("path"),
        ],
        Some(&ticket),
    );
    assert_eq!(code(&out), 1);
    let v = json(&out);
    assert_eq!(v["verification"]["verified"], false);
    assert_eq!(v["verification"]["reason"], "bad_signature");
    assert_eq!(v["claims"]["unverified"], true);

    // The right key under another id: unknown key.
    let other_id = write_key_file(tmp.path(), "other-id", &format!("3 {}\n", key.to_base64()));
    let out = run(
        &[
            "--json",
            "inspect",
            "-",
            "--key-file",
            other_id.to_str().expect("path"),
        ],
        Some(&ticket),
    );
    assert_eq!(code(&out), 1);
    assert_eq!(json(&out)["verification"]["reason"], "unknown_key");

    // The right key, the wrong purpose.
    let right = write_key_file(tmp.path(), "right", &format!("7 {}\n", key.to_base64()));
    let right = right.to_str().expect("path");
    let out = run(
        &[
            "--json",
            "inspect",
            "-",
            "--key-file",
            right,
            "--purpose",
            "other",
        ],
        Some(&ticket),
    );
    assert_eq!(code(&out), 1);
    assert_eq!(json(&out)["verification"]["reason"], "wrong_purpose");

    // A bare key (as keygen prints it) is tried under the ticket's key id.
    let bare = write_key_file(tmp.path(), "bare", &format!("{}\n", key.to_base64()));
    let out = run(
        &[
            "--json",
            "inspect",
            "-",
            "--key-file",
            bare.to_str().expect("path"),
        ],
        Some(&ticket),
    );
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    assert_eq!(json(&out)["verification"]["key_id"], 7);
}

#[test]
fn inspect_reports_an_expired_ticket_as_not_verified() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = TicketKey::generate();
    let ticket = ticket_manager("__Host-session", 1, &key)
        .create_at(NewSession::new(), two_days_ago())
        .expect("ticket")
        .token()
        .to_owned();
    let keys = write_key_file(tmp.path(), "k", &format!("1 {}\n", key.to_base64()));
    let out = run(
        &[
            "--json",
            "inspect",
            "-",
            "--key-file",
            keys.to_str().expect("path"),
        ],
        Some(&ticket),
    );
    assert_eq!(code(&out), 1);
    let v = json(&out);
    assert_eq!(v["verification"]["signature_valid"], true);
    assert_eq!(v["verification"]["reason"], "absolute_expired");
    assert_eq!(v["claims"]["expired"], true);
}

#[test]
fn inspect_never_echoes_the_input() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = TicketKey::generate();
    let ticket = ticket_manager("__Host-session", 1, &key)
        .create(NewSession::new().with_user("alice"))
        .expect("ticket")
        .token()
        .to_owned();
    let keys = write_key_file(tmp.path(), "k", &format!("1 {}\n", key.to_base64()));
    let keys = keys.to_str().expect("path");
    let token = latchkey::SessionId::generate().to_token();
    // A token that starts with '-' must not be taken for an option (and
    // quoted back by the argument parser).
    let dashed = format!("-{}", &token[1..]);
    let mut tampered = ticket.clone().into_bytes();
    let last = tampered.len() - 10;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ASCII");
    let secrets = [
        token.clone(),
        dashed,
        token[..40].to_owned(),
        format!("{}=", &token[..42]),
        ticket.clone(),
        tampered,
        ticket[..100].to_owned(),
        format!("{ticket}x"),
    ];
    for secret in &secrets {
        for json_flag in [false, true] {
            let mut base = vec![];
            if json_flag {
                base.push("--json");
            }
            base.push("inspect");
            let cases: Vec<(Vec<&str>, Option<&str>)> = vec![
                ([base.clone(), vec![secret.as_str()]].concat(), None),
                ([base.clone(), vec!["-"]].concat(), Some(secret.as_str())),
                (
                    [base.clone(), vec!["-", "--key-file", keys]].concat(),
                    Some(secret.as_str()),
                ),
                (
                    [base.clone(), vec![secret.as_str(), "--key-file", keys]].concat(),
                    None,
                ),
                // Usage errors quote arguments: the secret must be scrubbed.
                (
                    [base.clone(), vec![secret.as_str(), secret.as_str()]].concat(),
                    None,
                ),
                (
                    [base.clone(), vec![secret.as_str(), "--bogus"]].concat(),
                    None,
                ),
            ];
            for (args, stdin) in cases {
                let out = run(&args, stdin);
                let text = all_output(&out);
                assert!(
                    !text.contains(secret.as_str()),
                    "echoed by {:?} (stdin: {}): {text}",
                    args.iter()
                        .map(|a| if a == secret { "<secret>" } else { a })
                        .collect::<Vec<_>>(),
                    stdin.is_some()
                );
                assert!(!text.contains(&key.to_base64()));
                assert!([0, 1, 2].contains(&code(&out)), "{text}");
            }
        }
    }
}

// ---- sessions, revoke, purge ------------------------------------------------

#[test]
fn sessions_lists_a_users_live_sessions_with_deadlines() {
    let fx = Fixture::new();
    let phone = fx
        .manager
        .create(NewSession::new().with_user("alice").with_device("phone"))
        .expect("phone");
    let laptop = fx
        .manager
        .create(
            NewSession::new()
                .with_user("alice")
                .with_device("laptop\x1b[31m"),
        )
        .expect("laptop");
    fx.manager
        .create(NewSession::new().with_user("bob"))
        .expect("bob");
    // Expired: created two days ago, past both deadlines.
    fx.manager
        .create_at(NewSession::new().with_user("alice"), two_days_ago())
        .expect("old");

    let out = run(
        &[
            "--json",
            "sessions",
            "--store",
            &fx.spec(),
            "--user",
            "alice",
        ],
        None,
    );
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["user"], "alice");
    let list = v["sessions"].as_array().expect("array");
    let fps: Vec<&str> = list
        .iter()
        .map(|s| s["fingerprint"].as_str().expect("fp"))
        .collect();
    let mut expected = vec![
        phone.fingerprint().to_string(),
        laptop.fingerprint().to_string(),
    ];
    expected.sort();
    let mut got: Vec<String> = fps.iter().map(|s| (*s).to_owned()).collect();
    got.sort();
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
    }

    let out = run(
        &["sessions", "--store", &fx.spec(), "--user", "alice"],
        None,
    );
    let text = stdout(&out);
    assert!(text.contains("FINGERPRINT") && text.contains("phone"));
    assert!(text.contains(&phone.fingerprint().to_string()));
    // A device label's escape sequence is shown escaped, never sent raw.
    assert!(
        !text.contains('\x1b') && text.contains("laptop\\u{1b}[31m"),
        "{text}"
    );
    assert!(!text.contains(phone.token()) && !text.contains(laptop.token()));

    let out = run(
        &["sessions", "--store", &fx.spec(), "--user", "carol"],
        None,
    );
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("no live sessions"));
}

#[test]
fn revoke_by_fingerprint_ends_only_that_session() {
    let fx = Fixture::new();
    let phone = fx
        .manager
        .create(NewSession::new().with_user("alice"))
        .expect("phone");
    let laptop = fx
        .manager
        .create(NewSession::new().with_user("alice"))
        .expect("laptop");
    let fp = phone.fingerprint().to_string();

    // No --user: the file store finds the owner from the record.
    let out = run(
        &[
            "--json",
            "revoke",
            "--store",
            &fx.spec(),
            "--fingerprint",
            &fp,
        ],
        None,
    );
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["user"], "alice");
    assert_eq!(v["ended"][0], fp);
    assert!(fx.manager.load(phone.token()).is_err());
    assert!(fx.manager.load(laptop.token()).is_ok());

    // Again: nothing live by that name any more.
    let out = run(
        &[
            "--json",
            "revoke",
            "--store",
            &fx.spec(),
            "--fingerprint",
            &fp,
        ],
        None,
    );
    assert_eq!(code(&out), 1);
    assert_eq!(json(&out)["error"]["kind"], "not_found");

    // Another user's name never reaches alice's session.
    let out = run(
        &[
            "revoke",
            "--store",
            &fx.spec(),
            "--fingerprint",
            &laptop.fingerprint().to_string(),
            "--user",
            "mallory",
        ],
        None,
    );
    assert_eq!(code(&out), 1);
    assert!(fx.manager.load(laptop.token()).is_ok());
}

#[test]
fn revoke_by_user_with_except_keeps_that_session() {
    let fx = Fixture::new();
    let a = fx
        .manager
        .create(NewSession::new().with_user("alice"))
        .expect("a");
    let b = fx
        .manager
        .create(NewSession::new().with_user("alice"))
        .expect("b");
    let c = fx
        .manager
        .create(NewSession::new().with_user("alice"))
        .expect("c");
    let bob = fx
        .manager
        .create(NewSession::new().with_user("bob"))
        .expect("bob");

    // A mistyped --except ends nothing.
    let out = run(
        &[
            "revoke",
            "--store",
            &fx.spec(),
            "--user",
            "alice",
            "--except",
            "000000000000",
        ],
        None,
    );
    assert_eq!(code(&out), 1);
    assert!(fx.manager.load(a.token()).is_ok());

    let keep = b.fingerprint().to_string();
    let out = run(
        &[
            "--json",
            "revoke",
            "--store",
            &fx.spec(),
            "--user",
            "alice",
            "--except",
            &keep,
        ],
        None,
    );
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["kept"], keep);
    assert_eq!(v["ended"].as_array().expect("ended").len(), 2);
    assert!(fx.manager.load(a.token()).is_err());
    assert!(fx.manager.load(b.token()).is_ok());
    assert!(fx.manager.load(c.token()).is_err());
    assert!(fx.manager.load(bob.token()).is_ok());

    // Without --except: every session of the user.
    let out = run(&["revoke", "--store", &fx.spec(), "--user", "alice"], None);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("ended 1 session(s) of alice"));
    assert!(fx.manager.load(b.token()).is_err());
    assert!(fx.manager.load(bob.token()).is_ok());
}

#[test]
fn purge_removes_expired_records_and_lists_what_it_skipped() {
    let fx = Fixture::new();
    fx.manager
        .create_at(NewSession::new().with_user("alice"), two_days_ago())
        .expect("old");
    let live = fx
        .manager
        .create(NewSession::new().with_user("alice"))
        .expect("live");
    let bad = "ab".repeat(32);
    fs::create_dir_all(fx.dir.join("sessions/ab")).expect("dir");
    fs::write(fx.dir.join(format!("sessions/ab/{bad}.session")), b"GIF89a").expect("bad file");

    let out = run(&["--json", "purge", "--store", &fx.spec()], None);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["removed"], 1);
    assert_eq!(v["skipped"], 1);
    assert_eq!(v["skips"][0]["moved_aside"], true);
    assert_eq!(v["skips"][0]["entry"], "sessions/ab/abababababab*.session");
    assert!(fx.dir.join(format!("corrupt/{bad}.session")).exists());
    assert!(fx.manager.load(live.token()).is_ok());

    let out = run(&["purge", "--store", &fx.spec()], None);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("removed 0 expired records; skipped 0 entries"));
}

// ---- keygen -----------------------------------------------------------------

#[test]
fn keygen_prints_a_key_that_round_trips_into_a_key_ring() {
    let out = run(&["keygen"], None);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let key = TicketKey::from_base64(text.trim()).expect("TicketKey reads keygen's output");
    let ring = KeyRing::new(1, key);
    let ticket = TicketManager::new("__Host-session", ring.clone())
        .expect("manager")
        .create(NewSession::new())
        .expect("ticket");
    assert!(
        TicketManager::new("__Host-session", ring)
            .expect("manager")
            .load(ticket.token())
            .is_ok()
    );

    let out = run(&["--json", "keygen", "--id", "9"], None);
    let v = json(&out);
    assert_eq!(v["key_id"], 9);
    TicketKey::from_base64(v["key"].as_str().expect("key")).expect("a key");
    assert_ne!(v["key"].as_str(), Some(text.trim()), "keys are fresh");
}

#[test]
fn keygen_out_writes_a_0600_file_and_never_prints_the_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("ticket.key");
    let p = path.to_str().expect("path");
    let out = run(&["keygen", "--out", p, "--id", "5"], None);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let meta = fs::metadata(&path).expect("written");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let content = fs::read_to_string(&path).expect("readable");
    let (id, key) = content.trim().split_once(' ').expect("ID KEY");
    assert_eq!(id, "5");
    let key = TicketKey::from_base64(key).expect("a key");
    assert!(!all_output(&out).contains(&key.to_base64()));

    // The key file verifies tickets signed with the key.
    let ticket = ticket_manager("__Host-session", 5, &key)
        .create(NewSession::new())
        .expect("ticket")
        .token()
        .to_owned();
    let out = run(&["--json", "inspect", "-", "--key-file", p], Some(&ticket));
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    assert_eq!(json(&out)["verification"]["key_id"], 5);

    // Never over an existing file.
    let out = run(&["keygen", "--out", p], None);
    assert_eq!(code(&out), 4);
    assert_eq!(fs::read_to_string(&path).expect("kept"), content);
}

// ---- stats ------------------------------------------------------------------

#[test]
fn stats_count_records_by_state() {
    let fx = Fixture::new();
    let first = fx
        .manager
        .create_at(
            NewSession::new().with_user("alice"),
            now().saturating_sub(Duration::from_secs(60)),
        )
        .expect("first");
    fx.manager
        .create(NewSession::new().with_user("bob"))
        .expect("bob");
    // One rotation: a retired record and a live successor.
    let rotated = fx
        .manager
        .create(NewSession::new().with_user("carol"))
        .expect("carol");
    let mut session = fx.manager.load(rotated.token()).expect("loads").session;
    fx.manager.rotate(&mut session).expect("rotated");
    // One logout: an ended record.
    let gone = fx.manager.create(NewSession::new()).expect("anon");
    let session = fx.manager.load(gone.token()).expect("loads").session;
    fx.manager.terminate(&session).expect("ended");
    // One expired, not yet purged.
    fx.manager
        .create_at(NewSession::new(), two_days_ago())
        .expect("old");

    let out = run(&["--json", "stats", "--store", &fx.spec()], None);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["by_state"]["live"], 3);
    assert_eq!(v["by_state"]["rotated"], 1);
    assert_eq!(v["by_state"]["ended"], 1);
    assert_eq!(v["by_state"]["expired"], 1);
    assert_eq!(v["by_state"]["corrupt"], 0);
    assert_eq!(v["records"], 6);
    assert_eq!(v["users_with_live_sessions"], 3);
    // The default policy's 20-minute idle timeout: every live one expires
    // within the hour.
    assert_eq!(v["expiring_within_hour"], 3);
    assert_eq!(
        v["oldest_live"]["fingerprint"],
        first.fingerprint().to_string()
    );
    assert!(v["session_bytes"].as_u64().is_some_and(|b| b > 0));

    let out = run(&["stats", "--store", &fx.spec()], None);
    assert!(stdout(&out).contains("expiring within 1h:"));
}

// ---- check ------------------------------------------------------------------

fn codes(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] == "problem")
        .map(|f| f["code"].as_str().expect("code").to_owned())
        .collect();
    out.sort();
    out
}

#[test]
fn check_finds_damage_and_repair_fixes_it() {
    let fx = Fixture::new();
    let alice = fx
        .manager
        .create(NewSession::new().with_user("alice"))
        .expect("alice");
    let dir = fx.dir.to_str().expect("path");

    let out = run(&["--json", "check", dir], None);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    assert_eq!(json(&out)["clean"], true);

    // A corrupt session file, a foreign one, an orphaned temp file, an
    // unused lock file.
    let corrupt = "cd".repeat(32);
    let foreign = "ab".repeat(32);
    fs::create_dir_all(fx.dir.join("sessions/cd")).expect("dir");
    fs::create_dir_all(fx.dir.join("sessions/ab")).expect("dir");
    fs::write(
        fx.dir.join(format!("sessions/cd/{corrupt}.session")),
        b"latchkey-session 1\n{\"version\":",
    )
    .expect("corrupt");
    fs::write(
        fx.dir.join(format!("sessions/ab/{foreign}.session")),
        b"GIF89a",
    )
    .expect("foreign");
    fs::write(
        fx.dir.join(format!("sessions/cd/.{corrupt}.tmp")),
        b"half a write",
    )
    .expect("temp");
    fs::write(fx.dir.join("locks/s-99"), b"").expect("lock");
    // An index mismatch: alice's index lists a key with no record and
    // misses her live session.
    let stale = "ef".repeat(32);
    fs::write(
        fx.index_file("alice"),
        format!("latchkey-user-index 1\n{{\"user\":\"alice\",\"keys\":[\"{stale}\"]}}"),
    )
    .expect("index");
    // The mismatch is real: the library no longer lists alice's session.
    assert!(fx.manager.sessions_of("alice").expect("listed").is_empty());

    let out = run(&["--json", "check", dir], None);
    assert_eq!(code(&out), 1, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["clean"], false);
    assert_eq!(
        codes(&v),
        [
            "corrupt_session",
            "foreign_session",
            "missing_index_entry",
            "orphaned_lock",
            "orphaned_temp",
            "stale_index_entry",
        ]
    );
    // Read-only: nothing moved.
    assert!(fx.dir.join(format!("sessions/cd/.{corrupt}.tmp")).exists());
    let human = run(&["check", dir], None);
    assert_eq!(code(&human), 1);
    assert!(stdout(&human).contains("can be fixed with --repair"));

    let out = run(&["--json", "check", dir, "--repair"], None);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["clean"], true);
    assert_eq!(v["fixed"].as_array().expect("fixed").len(), 6);
    assert!(
        v["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .any(|a| a.as_str().is_some_and(|a| a.contains("corrupt/")))
    );
    assert!(fx.dir.join(format!("corrupt/{corrupt}.session")).exists());
    assert!(fx.dir.join(format!("corrupt/{foreign}.session")).exists());
    assert!(!fx.dir.join(format!("sessions/cd/.{corrupt}.tmp")).exists());
    assert!(!fx.dir.join("locks/s-99").exists());
    // The index is whole again, and the session still works.
    assert_eq!(fx.manager.sessions_of("alice").expect("listed").len(), 1);
    assert!(fx.manager.load(alice.token()).is_ok());

    let out = run(&["--json", "check", dir], None);
    assert_eq!(code(&out), 0, "{}", all_output(&out));
    let v = json(&out);
    assert_eq!(v["clean"], true);
    // What was set aside stays visible, as a note.
    assert!(
        v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["code"] == "set_aside" && f["severity"] == "note")
    );
}

// ---- exit codes and errors ---------------------------------------------------

#[test]
fn exit_codes_distinguish_usage_store_and_not_found() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = format!("file:{}", tmp.path().join("nope").display());

    // 3: the store is unavailable (and a typo does not create a store).
    let out = run(
        &["--json", "sessions", "--store", &missing, "--user", "a"],
        None,
    );
    assert_eq!(code(&out), 3);
    assert_eq!(json(&out)["error"]["kind"], "store_unavailable");
    assert!(!tmp.path().join("nope").exists());
    let out = run(
        &["check", tmp.path().join("nope").to_str().expect("path")],
        None,
    );
    assert_eq!(code(&out), 3);

    // 2: usage errors, from clap and from the commands.
    assert_eq!(
        code(&run(&["sessions", "--store", "bogus", "--user", "a"], None)),
        2
    );
    assert_eq!(code(&run(&["revoke", "--store", "memory"], None)), 2);
    let out = run(
        &[
            "--json",
            "revoke",
            "--store",
            "memory",
            "--fingerprint",
            "xyz",
        ],
        None,
    );
    assert_eq!(code(&out), 2);
    assert_eq!(json(&out)["error"]["kind"], "usage");
    assert_eq!(code(&run(&["stats", "--store", "memory"], None)), 2);
    let out = run(
        &["inspect", "-", "--key-file", "/nonexistent/keys"],
        Some("x"),
    );
    assert_eq!(code(&out), 2);
    let tmp_keys = write_key_file(tmp.path(), "bad", "1 c2hvcnQ=\n");
    let out = run(
        &[
            "inspect",
            "-",
            "--key-file",
            tmp_keys.to_str().expect("path"),
        ],
        Some("x"),
    );
    assert_eq!(code(&out), 2);
    assert!(all_output(&out).contains("line 1"));

    // 1: not found.
    let out = run(
        &[
            "revoke",
            "--store",
            "memory",
            "--fingerprint",
            "000000000000",
            "--user",
            "a",
        ],
        None,
    );
    assert_eq!(code(&out), 1);

    // The memory store works, empty.
    let out = run(
        &["--json", "sessions", "--store", "memory", "--user", "a"],
        None,
    );
    assert_eq!(code(&out), 0);
    assert_eq!(json(&out)["sessions"], Value::Array(vec![]));
    let out = run(&["--json", "purge", "--store", "memory"], None);
    assert_eq!(json(&out)["removed"], 0);
}

#[cfg(not(feature = "redis"))]
#[test]
fn redis_without_the_feature_says_how_to_build_it() {
    let out = run(
        &[
            "sessions",
            "--store",
            "redis://:hunter2@127.0.0.1:1/",
            "--user",
            "a",
        ],
        None,
    );
    assert_eq!(code(&out), 2);
    let text = all_output(&out);
    assert!(text.contains("--features redis"), "{text}");
    assert!(!text.contains("hunter2"));
}

#[cfg(feature = "redis")]
#[test]
fn an_unreachable_redis_is_store_unavailable_and_its_url_is_not_printed() {
    let out = run(
        &[
            "sessions",
            "--store",
            "redis://:hunter2@127.0.0.1:1/",
            "--user",
            "a",
        ],
        None,
    );
    assert_eq!(code(&out), 3);
    assert!(!all_output(&out).contains("hunter2"));
}

#[test]
fn help_documents_the_exit_codes() {
    for args in [
        &["--help"][..],
        &["inspect", "--help"],
        &["check", "--help"],
    ] {
        let out = run(args, None);
        assert_eq!(code(&out), 0);
        let text = stdout(&out);
        assert!(text.contains("Exit status:") && text.contains("3  the store is unavailable"));
    }
    assert!(stdout(&run(&["inspect", "--help"], None)).contains("standard input"));
}

// ---- the published ticket vectors ---------------------------------------------

/// The key file for a vector's `keys` (`{"id": "hex"}`).
fn vector_key_file(dir: &Path, name: &str, keys: &Value) -> PathBuf {
    use base64::Engine as _;
    let mut lines = String::new();
    for (id, hex) in keys.as_object().expect("keys") {
        let hex = hex.as_str().expect("hex");
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
            .collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        lines.push_str(&format!("{id} {b64}\n"));
    }
    write_key_file(dir, name, &lines)
}

#[test]
fn inspect_agrees_with_the_published_ticket_vectors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/tickets.json");
    let vectors: Value =
        serde_json::from_str(&fs::read_to_string(path).expect("vectors")).expect("JSON");
    for (i, v) in vectors["valid"]
        .as_array()
        .expect("valid")
        .iter()
        .enumerate()
    {
        let keys = vector_key_file(tmp.path(), &format!("valid-{i}"), &v["keys"]);
        let ticket = v["ticket"].as_str().expect("ticket");
        let purpose = v["purpose"].as_str().expect("purpose");
        let out = run(
            &[
                "--json",
                "inspect",
                "-",
                "--purpose",
                purpose,
                "--key-file",
                keys.to_str().expect("path"),
            ],
            Some(ticket),
        );
        let got = json(&out);
        let claims = &v["claims"];
        let name = &v["name"];
        assert_eq!(got["header"]["key_id"], v["key_id"], "{name}");
        assert_eq!(
            got["claims"]["session_key"], claims["session_key"],
            "{name}"
        );
        assert_eq!(got["claims"]["user"], claims["user"], "{name}");
        assert_eq!(got["claims"]["device"], claims["device"], "{name}");
        let created = Timestamp::from_unix_millis(claims["created_at"].as_u64().expect("ms"));
        assert_eq!(got["claims"]["created_at"], created.to_string(), "{name}");
        let absolute =
            Timestamp::from_unix_millis(claims["absolute_deadline"].as_u64().expect("ms"));
        assert_eq!(
            got["claims"]["absolute_deadline"],
            absolute.to_string(),
            "{name}"
        );
        assert_eq!(got["verification"]["signature_valid"], true, "{name}");
        assert_eq!(got["verification"]["key_id"], v["key_id"], "{name}");
        // Whether it has expired depends on today's date, not on the vector.
        if now() >= absolute {
            assert_eq!(code(&out), 1, "{name}");
            assert_eq!(got["verification"]["reason"], "absolute_expired", "{name}");
        }
        assert!(!all_output(&out).contains(ticket));
    }
    for (i, v) in vectors["invalid"]
        .as_array()
        .expect("invalid")
        .iter()
        .enumerate()
    {
        let keys = vector_key_file(tmp.path(), &format!("invalid-{i}"), &v["keys"]);
        let ticket = v["ticket"].as_str().expect("ticket");
        let purpose = v["purpose"].as_str().expect("purpose");
        let out = run(
            &[
                "--json",
                "inspect",
                "-",
                "--purpose",
                purpose,
                "--key-file",
                keys.to_str().expect("path"),
            ],
            Some(ticket),
        );
        let got = json(&out);
        let name = &v["name"];
        assert!(!all_output(&out).contains(ticket), "{name}");
        match v["error"].as_str().expect("error") {
            "malformed" => {
                assert_eq!(code(&out), 1, "{name}");
                assert!(
                    got["well_formed"] == false || got["valid"] == false,
                    "{name}: {got}"
                );
            }
            // Deadline vectors: the signature is good; which deadline has
            // passed depends on today's date.
            "idle_expired" | "absolute_expired" => {
                assert_eq!(got["verification"]["signature_valid"], true, "{name}");
            }
            reason => {
                assert_eq!(code(&out), 1, "{name}");
                assert_eq!(got["verification"]["reason"], reason, "{name}");
            }
        }
    }
}
