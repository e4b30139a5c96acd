//! What web apps expect of sessions, through the demo: CSRF tokens on
//! every form, "keep me signed in", a password prompt before a privilege
//! change, and flash messages.
//!
//! The demo runs on the system clock, so time passes for real here: the
//! windows involved are shortened by its options (`--rotation-grace-ms`,
//! `--reauth-after-secs`) and the sleeps kept to about a second.

use std::time::Duration;

use super::{Demo, csrf_in, with_set_cookies};
use crate::http::HttpResponse;

const CLEARED_SESSION: &str = "latchkey-session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax";
const CLEARED_REMEMBER: &str = "latchkey-remember=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax";

/// Logs `user` in with "Keep me signed in" ticked; returns the `Cookie`
/// header the browser then sends (session and remember-me cookies).
fn login_remembered(demo: &Demo, user: &str) -> String {
    let r = demo.post(
        "/login",
        None,
        &format!("username={user}&password=latchkey&remember=yes"),
    );
    assert_eq!(r.status, 303, "{r:?}");
    let set = r.set_cookies();
    assert_eq!(set.len(), 2, "{set:?}");
    with_set_cookies("", &r)
}

/// The value of the cookie `name` in a `Cookie` header.
fn cookie<'a>(header: &'a str, name: &str) -> &'a str {
    header
        .split("; ")
        .find_map(|c| c.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in {header:?}"))
}

fn remember_only(header: &str) -> String {
    format!("latchkey-remember={}", cookie(header, "latchkey-remember"))
}

/// `token` with one character in the middle changed.
fn altered(token: &str) -> String {
    let other = if &token[10..11] == "A" { "B" } else { "A" };
    format!("{}{other}{}", &token[..10], &token[11..])
}

fn assert_refused_as_csrf(r: &HttpResponse, what: &str) {
    assert_eq!(r.status, 403, "{what}: {r:?}");
    assert!(r.body.contains("security token"), "{what}: {}", r.body);
    assert!(r.set_cookies().is_empty(), "{what}: the cookie is kept");
}

#[test]
fn a_post_without_the_sessions_csrf_token_is_403_and_changes_nothing() {
    let demo = Demo::start(&["--store", "memory"]);
    let mut alice = demo.login("alice");
    let phone = demo.login("alice");
    let mut bob = demo.login("bob");
    let before = demo.get("/me", Some(&alice)).body;
    let phone_fp = demo
        .get("/me", Some(&phone))
        .field("fingerprint")
        .unwrap()
        .to_owned();
    // A token of another session, as a forger logged in as themselves has.
    let bobs = demo.csrf(&mut bob);
    let mine = demo.csrf(&mut alice);
    let forms = [
        ("/admin", String::new()),
        ("/logout", String::new()),
        ("/sessions/others", String::new()),
        ("/sessions/end", format!("fingerprint={phone_fp}")),
        ("/admin/confirm", "password=latchkey".to_owned()),
    ];
    for (path, fields) in &forms {
        for token in [
            None,
            Some(String::new()),
            Some("not-a-token".to_owned()),
            Some(bobs.clone()),
            Some(altered(&mine)),
        ] {
            let body = match &token {
                None => fields.clone(),
                Some(t) => format!("csrf_token={t}&{fields}"),
            };
            let r = demo.post(path, Some(&alice), &body);
            assert_refused_as_csrf(&r, &format!("{path} with {token:?}"));
        }
    }
    assert_eq!(
        demo.get("/me", Some(&alice)).body,
        before,
        "nothing changed"
    );
    assert_eq!(
        demo.get("/me", Some(&phone)).status,
        200,
        "the phone still in"
    );
    assert_eq!(demo.get("/me", Some(&bob)).status, 200);
    // With the token of its own page, the same form works.
    let r = demo.post("/admin", Some(&alice), &format!("csrf_token={mine}"));
    assert_eq!(r.status, 303, "{r:?}");
    let admin = r.cookie_pair();
    assert_eq!(demo.get("/me", Some(&admin)).field("role"), Some("admin"));
}

#[test]
fn every_form_of_a_session_page_carries_a_fresh_csrf_token() {
    let demo = Demo::start(&["--store", "memory"]);
    let mut alice = demo.login("alice");
    demo.login("alice");
    for path in ["/", "/sessions"] {
        let page = demo.get(path, Some(&alice)).body;
        let forms = page.matches("<form method=post").count();
        assert!(forms >= 2, "{page}");
        assert_eq!(page.matches("name=csrf_token").count(), forms, "{page}");
    }
    // Masked per page (BREACH): two pages, two strings, both good.
    let (one, two) = (demo.csrf(&mut alice), demo.csrf(&mut alice));
    assert_ne!(one, two);
    let r = demo.post("/admin", Some(&alice), &format!("csrf_token={one}"));
    assert_eq!(r.status, 303);
    // The login form of a visitor has none: it is guarded by the origin
    // check alone (the demo makes no session for visitors).
    assert!(!demo.get("/", None).body.contains("csrf_token"));
}

#[test]
fn keep_me_signed_in_restores_the_session_from_the_remember_cookie() {
    let demo = Demo::start(&["--store", "memory"]);
    let r = demo.post(
        "/login",
        None,
        "username=alice&password=latchkey&remember=yes",
    );
    let set = r.set_cookies();
    assert_eq!(set.len(), 2, "{set:?}");
    assert!(set[0].starts_with("latchkey-session="), "{set:?}");
    // Persistent, and as hardened as the session cookie on plain http.
    let attrs: Vec<&str> = set[1].split("; ").collect();
    let (name, value) = attrs[0].split_once('=').unwrap();
    assert_eq!(name, "latchkey-remember");
    assert!(value.starts_with("rm1.") && value.len() == 68, "{value}");
    assert_eq!(
        &attrs[1..],
        ["Max-Age=2592000", "Path=/", "HttpOnly", "SameSite=Lax"]
    );
    let jar = with_set_cookies("", &r);
    assert_eq!(demo.get("/me", Some(&jar)).field("remembered"), Some("no"));

    // The browser comes back without its session cookie.
    let page = demo.get("/", Some(&remember_only(&jar)));
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("restored from a remember-me token"),
        "{}",
        page.body
    );
    let set = page.set_cookies();
    assert_eq!(set.len(), 2, "both cookies are new: {set:?}");
    let restored = with_set_cookies(&remember_only(&jar), &page);
    assert_ne!(
        cookie(&restored, "latchkey-remember"),
        cookie(&jar, "latchkey-remember")
    );
    let me = demo.get("/me", Some(&restored));
    assert_eq!(me.field("user"), Some("alice"));
    assert_eq!(me.field("remembered"), Some("yes"));
    // A page of a live session uses no remember-me token.
    assert!(demo.get("/", Some(&restored)).set_cookies().is_empty());
}

#[test]
fn a_remember_cookie_used_again_within_the_grace_is_no_alarm() {
    // The default 30 s window: the second of two tabs restored at once.
    let demo = Demo::start(&["--store", "memory"]);
    let first = remember_only(&login_remembered(&demo, "alice"));
    let page = demo.get("/", Some(&first));
    let restored = with_set_cookies(&first, &page);
    let again = demo.get("/", Some(&first));
    assert_eq!(again.status, 200);
    assert!(
        again.body.contains("action=/login"),
        "no login: {}",
        again.body
    );
    // The replacement the first request got, handed on; nothing cleared.
    let set = again.set_cookies();
    assert_eq!(set.len(), 1, "{set:?}");
    assert!(
        set[0].starts_with(&format!(
            "latchkey-remember={};",
            cookie(&restored, "latchkey-remember")
        )),
        "{set:?}"
    );
    assert_eq!(
        demo.get("/me", Some(&restored)).field("user"),
        Some("alice")
    );
}

#[test]
fn a_remember_cookie_used_again_after_the_grace_ends_everything_and_clears_both_cookies() {
    let demo = Demo::start(&["--store", "memory", "--rotation-grace-ms", "200"]);
    let jar = login_remembered(&demo, "alice");
    let stolen = remember_only(&jar);
    let restored = with_set_cookies(&stolen, &demo.get("/", Some(&stolen)));
    std::thread::sleep(Duration::from_millis(600));
    // The old token again, on its own, as a thief who copied it sends it.
    let reused = demo.get("/", Some(&stolen));
    assert_eq!(reused.status, 200);
    assert!(reused.body.contains("remember_theft"), "{}", reused.body);
    assert!(reused.body.contains("action=/login"));
    let mut set = reused.set_cookies();
    set.sort_unstable();
    assert_eq!(set, [CLEARED_REMEMBER, CLEARED_SESSION]);
    // Every session of the user ended, and the replacement token with them.
    for session in [&jar, &restored] {
        let me = demo.get("/me", Some(session));
        assert_eq!(me.field("rejected"), Some("terminated"), "{}", me.body);
    }
    let replacement = remember_only(&restored);
    let page = demo.get("/", Some(&replacement));
    assert!(page.body.contains("action=/login"));
    assert_eq!(page.set_cookies(), [CLEARED_REMEMBER]);
}

#[test]
fn logout_forgets_the_remember_token_and_clears_both_cookies() {
    let demo = Demo::start(&["--store", "memory"]);
    let mut jar = login_remembered(&demo, "alice");
    let remembered = remember_only(&jar);
    let r = demo.submit("/logout", &mut jar, "");
    assert_eq!(r.status, 303);
    let mut set = r.set_cookies();
    set.sort_unstable();
    assert_eq!(set, [CLEARED_REMEMBER, CLEARED_SESSION]);
    let page = demo.get("/", Some(&remembered));
    assert!(page.body.contains("action=/login"), "not signed in again");
    assert_eq!(page.set_cookies(), [CLEARED_REMEMBER]);
    // Logging in without the box forgets a token the browser still sends.
    let again = login_remembered(&demo, "alice");
    let r = demo.post(
        "/login",
        Some(&remember_only(&again)),
        "username=alice&password=latchkey",
    );
    assert!(r.set_cookies().contains(&CLEARED_REMEMBER), "{r:?}");
    let page = demo.get("/", Some(&remember_only(&again)));
    assert!(page.body.contains("action=/login"));
}

#[test]
fn log_out_everywhere_else_ends_remembered_devices_and_says_so_once() {
    let demo = Demo::start(&["--store", "memory"]);
    let mut laptop = login_remembered(&demo, "alice");
    let phone = login_remembered(&demo, "alice");
    // `forget_all` spares a token issued in the very millisecond of the
    // cutoff (so that a request may forget all and then issue one for
    // itself); on loopback the phone's login can be that recent.
    std::thread::sleep(Duration::from_millis(5));
    let r = demo.submit("/sessions/others", &mut laptop, "");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("Location"), Some("/sessions"));
    // This browser's token went with the others (see `end_others`).
    assert_eq!(r.set_cookies(), [CLEARED_REMEMBER]);
    let laptop = with_set_cookies(&laptop, &r);

    let list = demo.get("/sessions", Some(&laptop));
    assert!(
        list.body.contains("Ended 1 other session."),
        "{}",
        list.body
    );
    assert!(
        list.body.contains("is now off on every device"),
        "{}",
        list.body
    );
    let reload = demo.get("/sessions", Some(&laptop));
    assert!(
        !reload.body.contains("Ended 1 other session."),
        "shown once"
    );
    assert!(reload.body.contains("1 live session(s)"));

    // The phone: its session was ended from elsewhere, and its token cannot
    // bring it back.
    let page = demo.get("/", Some(&phone));
    assert!(page.body.contains("Your session ended"), "{}", page.body);
    assert!(
        page.body.contains("ended from another device"),
        "{}",
        page.body
    );
    let mut set = page.set_cookies();
    set.sort_unstable();
    assert_eq!(set, [CLEARED_REMEMBER, CLEARED_SESSION]);
}

#[test]
fn becoming_admin_after_an_old_login_asks_for_the_password_first() {
    // 0 seconds: every login counts as old.
    let demo = Demo::start(&["--store", "memory", "--reauth-after-secs", "0"]);
    let mut old = demo.login("alice");
    let stale_token = demo.csrf(&mut old);
    let r = demo.submit("/admin", &mut old, "");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("Location"), Some("/admin/confirm"));
    assert!(r.set_cookies().is_empty(), "nothing changed yet");
    assert_eq!(demo.get("/me", Some(&old)).field("role"), Some("user"));

    let prompt = demo.get("/admin/confirm", Some(&old));
    assert_eq!(prompt.status, 200);
    assert!(
        prompt.body.contains("needs your password again"),
        "{}",
        prompt.body
    );
    let token = csrf_in(&prompt.body);

    // A wrong password: asked again, nothing changed.
    let wrong = demo.post(
        "/admin/confirm",
        Some(&old),
        &format!("csrf_token={token}&password=guess"),
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong password"), "{}", wrong.body);
    assert!(wrong.body.contains("action=/admin/confirm"));
    assert!(wrong.set_cookies().is_empty());
    assert_eq!(demo.get("/me", Some(&old)).field("role"), Some("user"));
    // The prompt's form wants the token like any other.
    let forged = demo.post("/admin/confirm", Some(&old), "password=latchkey");
    assert_refused_as_csrf(&forged, "the prompt without a token");

    // The right one: re-authenticated (a new ID), then admin (another).
    let token = csrf_in(&wrong.body);
    let ok = demo.post(
        "/admin/confirm",
        Some(&old),
        &format!("csrf_token={token}&password=latchkey"),
    );
    assert_eq!(ok.status, 303, "{ok:?}");
    assert_eq!(ok.header("Location"), Some("/"));
    let admin = ok.cookie_pair();
    assert_ne!(admin, old);
    assert_eq!(demo.get("/me", Some(&admin)).field("role"), Some("admin"));
    assert_eq!(
        demo.get("/me", Some(&old)).field("rejected"),
        Some("superseded")
    );
    // A page rendered before the re-authentication cannot post after it.
    let late = demo.post(
        "/logout",
        Some(&admin),
        &format!("csrf_token={stale_token}"),
    );
    assert_refused_as_csrf(&late, "a token from before the re-authentication");

    let page = demo.get("/", Some(&admin));
    assert!(page.body.contains("You are now an admin."), "{}", page.body);
    assert!(
        !demo
            .get("/", Some(&admin))
            .body
            .contains("You are now an admin.")
    );
}

#[test]
fn the_password_prompt_depends_on_the_age_of_the_login() {
    let demo = Demo::start(&["--store", "memory", "--reauth-after-secs", "1"]);
    let mut old = demo.login("alice");
    std::thread::sleep(Duration::from_millis(1100));
    let r = demo.submit("/admin", &mut old, "");
    assert_eq!(r.header("Location"), Some("/admin/confirm"));
    let prompt = demo.get("/admin/confirm", Some(&old)).body;
    assert!(
        prompt.contains("more than 1 s ago counts as old"),
        "{prompt}"
    );
}

#[test]
fn a_remembered_session_always_asks_for_the_password() {
    // The default threshold of 5 minutes: the password login was moments
    // ago, and the restored session still asks.
    let demo = Demo::start(&["--store", "memory"]);
    let jar = remember_only(&login_remembered(&demo, "alice"));
    let mut restored = with_set_cookies(&jar, &demo.get("/", Some(&jar)));
    let r = demo.submit("/admin", &mut restored, "");
    assert_eq!(r.header("Location"), Some("/admin/confirm"));
    let prompt = demo.get("/admin/confirm", Some(&restored));
    assert!(
        prompt.body.contains("restored from a remember-me token"),
        "{}",
        prompt.body
    );
    let ok = demo.post(
        "/admin/confirm",
        Some(&restored),
        &format!("csrf_token={}&password=latchkey", csrf_in(&prompt.body)),
    );
    assert_eq!(ok.status, 303);
    let admin = with_set_cookies(&restored, &ok);
    assert_eq!(demo.get("/me", Some(&admin)).field("role"), Some("admin"));
}

#[test]
fn the_welcome_flash_shows_once() {
    let demo = Demo::start(&["--store", "memory"]);
    let cookie = demo.login("alice");
    let first = demo.get("/", Some(&cookie));
    assert!(
        first.body.contains("Welcome back, alice."),
        "{}",
        first.body
    );
    let second = demo.get("/", Some(&cookie));
    assert_eq!(second.status, 200);
    assert!(!second.body.contains("Welcome back"), "{}", second.body);
}

#[test]
fn tickets_mode_keeps_me_signed_in_and_checks_csrf_tokens_too() {
    let demo = Demo::start(&["--store", "memory", "--tickets"]);
    let jar = login_remembered(&demo, "alice");
    let restored = with_set_cookies(
        &remember_only(&jar),
        &demo.get("/", Some(&remember_only(&jar))),
    );
    assert_eq!(
        demo.get("/me", Some(&restored)).field("remembered"),
        Some("yes")
    );
    let mut session = restored.clone();
    let r = demo.post("/logout", Some(&session), "csrf_token=");
    assert_refused_as_csrf(&r, "tickets");
    assert_eq!(demo.submit("/logout", &mut session, "").status, 303);
}
