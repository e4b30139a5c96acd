//! CSRF tokens and flash messages through the public API, as an
//! application uses them, against both managers: server-side sessions
//! (`StoreManager` over a `MemoryStore`) and stateless tickets
//! (`TicketManager`, whose tickets carry the data).

use std::sync::Arc;
use std::time::Duration;

use latchkey::{
    CSRF_KEY, CSRF_TOKEN_LEN, CsrfError, FLASH_KEY, FlashError, KeyRing, MAX_FLASH_KIND_LEN,
    MAX_FLASH_MESSAGE_LEN, MAX_FLASHES, ManualClock, MemoryStore, NewSession, Session,
    SessionManager, StoreManager, TicketKey, TicketManager, Timestamp,
};
use proptest::prelude::*;

/// A browser talking to one manager: it holds the cookie, and every call
/// that issues a token moves the cookie on, as a framework adapter does.
struct Browser {
    manager: Arc<dyn SessionManager>,
    clock: ManualClock,
    cookie: String,
}

impl Browser {
    fn load(&self) -> Session {
        self.manager.load(&self.cookie).unwrap().session
    }

    /// Saves, and takes the new ticket if the manager issued one.
    fn save(&mut self, session: &mut Session) {
        if let Some(issued) = self.manager.save(session).unwrap() {
            self.cookie = issued.token().to_owned();
        }
    }

    fn login(&mut self, session: &mut Session, user: &str) {
        // A login a moment after the last one: a new authentication time.
        self.clock.advance(Duration::from_millis(1));
        self.cookie = self
            .manager
            .login(session, user)
            .unwrap()
            .token()
            .to_owned();
    }

    fn rotate(&mut self, session: &mut Session) {
        self.cookie = self.manager.rotate(session).unwrap().token().to_owned();
    }
}

/// One anonymous browser session per manager, named for failure messages.
fn browsers() -> Vec<(&'static str, Browser)> {
    let store = |clock: &ManualClock| -> Arc<dyn SessionManager> {
        Arc::new(StoreManager::new(MemoryStore::new()).with_clock(Arc::new(clock.clone())))
    };
    let tickets = |clock: &ManualClock| -> Arc<dyn SessionManager> {
        let keys = KeyRing::new(1, TicketKey::generate());
        Arc::new(
            TicketManager::new("__Host-session", keys)
                .unwrap()
                .with_clock(Arc::new(clock.clone())),
        )
    };
    let make = |manager: &dyn Fn(&ManualClock) -> Arc<dyn SessionManager>| {
        let clock = ManualClock::new(Timestamp::from_unix_millis(1_800_000_000_000));
        let manager = manager(&clock);
        let cookie = manager
            .create(NewSession::new())
            .unwrap()
            .token()
            .to_owned();
        Browser {
            manager,
            clock,
            cookie,
        }
    };
    vec![("store", make(&store)), ("tickets", make(&tickets))]
}

/// A token handed out on one page, the session saved as the adapter would.
fn page_with_token(b: &mut Browser) -> String {
    let mut s = b.load();
    let token = s.csrf_token();
    b.save(&mut s);
    token
}

#[test]
fn a_token_verifies_on_the_next_request() {
    for (name, mut b) in browsers() {
        let token = page_with_token(&mut b);
        assert_eq!(token.len(), CSRF_TOKEN_LEN, "{name}");
        assert_eq!(b.load().verify_csrf(&token), Ok(()), "{name}");
    }
}

#[test]
fn the_first_token_creates_the_secret_and_later_ones_do_not_modify() {
    for (name, mut b) in browsers() {
        let mut s = b.load();
        let _ = s.csrf_token();
        assert!(s.is_modified(), "{name}: the new secret must be saved");
        b.save(&mut s);
        let mut s = b.load();
        let _ = s.csrf_token();
        assert!(
            !s.is_modified(),
            "{name}: an existing secret costs no write"
        );
    }
}

#[test]
fn tokens_of_one_secret_differ_and_all_verify() {
    for (name, mut b) in browsers() {
        let first = page_with_token(&mut b);
        let mut s = b.load();
        let tokens: Vec<String> = (0..8).map(|_| s.csrf_token()).collect();
        assert!(!s.is_modified(), "{name}");
        for (i, t) in tokens.iter().enumerate() {
            assert_ne!(t, &first, "{name}: masking must vary every token");
            for u in &tokens[i + 1..] {
                assert_ne!(t, u, "{name}");
            }
            assert_eq!(s.verify_csrf(t), Ok(()), "{name}");
        }
        assert_eq!(s.verify_csrf(&first), Ok(()), "{name}");
    }
}

#[test]
fn a_token_of_another_session_is_a_mismatch() {
    for (name, mut b) in browsers() {
        let mine = page_with_token(&mut b);
        let mut other = b
            .manager
            .load(b.manager.create(NewSession::new()).unwrap().token())
            .unwrap()
            .session;
        let theirs = other.csrf_token();
        let s = b.load();
        assert_eq!(s.verify_csrf(&theirs), Err(CsrfError::Mismatch), "{name}");
        assert_eq!(other.verify_csrf(&mine), Err(CsrfError::Mismatch), "{name}");
    }
}

#[test]
fn garbage_tokens_get_typed_errors() {
    for (name, mut b) in browsers() {
        let token = page_with_token(&mut b);
        let s = b.load();
        let oversized = "A".repeat(10 * 1024 * 1024);
        let cases: Vec<(String, CsrfError)> = vec![
            (String::new(), CsrfError::Missing),
            ("x".into(), CsrfError::Malformed),
            (oversized, CsrfError::Malformed),
            (format!("{token}{token}"), CsrfError::Malformed),
            ("!".repeat(CSRF_TOKEN_LEN), CsrfError::Malformed),
            (
                format!("{}=", &token[..CSRF_TOKEN_LEN - 1]),
                CsrfError::Malformed,
            ),
            // A character of standard base64 (`+`), not of base64url. (A
            // replace of `-`/`_` left about 1 token in 15 unchanged, which
            // then verified.)
            (format!("+{}", &token[1..]), CsrfError::Malformed),
            ("é".repeat(CSRF_TOKEN_LEN / 2), CsrfError::Malformed),
            ("A".repeat(CSRF_TOKEN_LEN), CsrfError::Mismatch),
        ];
        for (bad, want) in cases {
            let shown: String = bad.chars().take(20).collect();
            assert_eq!(s.verify_csrf(&bad), Err(want), "{name}: {shown:?}");
        }
    }
}

#[test]
fn verifying_never_creates_a_secret() {
    for (name, b) in browsers() {
        let s = b.load();
        let forged = "A".repeat(CSRF_TOKEN_LEN);
        assert_eq!(s.verify_csrf(&forged), Err(CsrfError::NoSecret), "{name}");
        assert!(!s.is_modified(), "{name}");
        assert!(!s.keys().any(|k| k == CSRF_KEY), "{name}");
    }
}

#[test]
fn a_login_renews_the_secret() {
    for (name, mut b) in browsers() {
        // Anonymous, then a first login: the pre-login token (which whoever
        // planted the session may know) fails after it.
        let before = page_with_token(&mut b);
        let mut s = b.load();
        b.login(&mut s, "alice");
        assert_eq!(s.verify_csrf(&before), Err(CsrfError::NoSecret), "{name}");
        let after = s.csrf_token();
        assert!(s.is_modified(), "{name}");
        b.save(&mut s);
        let s = b.load();
        assert_eq!(s.verify_csrf(&after), Ok(()), "{name}: kept across save");
        assert_eq!(s.verify_csrf(&before), Err(CsrfError::Mismatch), "{name}");

        // The same user logging in again: renewed too.
        let mut s = b.load();
        b.login(&mut s, "alice");
        let s = b.load();
        assert_eq!(s.verify_csrf(&after), Err(CsrfError::NoSecret), "{name}");
        let alices = page_with_token(&mut b);

        // Another user: a fresh, empty session.
        let mut s = b.load();
        b.login(&mut s, "bob");
        assert_eq!(s.user(), Some("bob"), "{name}");
        assert_eq!(s.verify_csrf(&alices), Err(CsrfError::NoSecret), "{name}");
        let bobs = page_with_token(&mut b);
        assert_eq!(b.load().verify_csrf(&bobs), Ok(()), "{name}");
    }
}

#[test]
fn a_re_authentication_renews_the_secret() {
    // It records a new authentication time, as a login does.
    for (name, mut b) in browsers() {
        let mut s = b.load();
        b.login(&mut s, "alice");
        let before = page_with_token(&mut b);
        let mut s = b.load();
        b.clock.advance(Duration::from_millis(1));
        b.cookie = b.manager.reauthenticate(&mut s).unwrap().token().to_owned();
        assert_eq!(s.verify_csrf(&before), Err(CsrfError::NoSecret), "{name}");
        assert_eq!(
            b.load().verify_csrf(&before),
            Err(CsrfError::NoSecret),
            "{name}"
        );
        let after = page_with_token(&mut b);
        assert_eq!(b.load().verify_csrf(&after), Ok(()), "{name}");
    }
}

#[test]
fn a_token_made_right_after_login_survives_save_and_load() {
    // The binding uses the authentication time the login stamped on the
    // session in memory; the store and the ticket must give back the same.
    for (name, mut b) in browsers() {
        let mut s = b.load();
        b.login(&mut s, "alice");
        let token = s.csrf_token();
        b.save(&mut s);
        assert_eq!(b.load().verify_csrf(&token), Ok(()), "{name}");
    }
}

#[test]
fn a_routine_rotation_and_a_privilege_change_keep_the_secret() {
    for (name, mut b) in browsers() {
        let mut s = b.load();
        b.login(&mut s, "alice");
        let token = page_with_token(&mut b);
        let mut s = b.load();
        b.rotate(&mut s);
        assert_eq!(b.load().verify_csrf(&token), Ok(()), "{name}: rotate");
        let mut s = b.load();
        b.cookie = b
            .manager
            .change_privilege(&mut s)
            .unwrap()
            .token()
            .to_owned();
        assert_eq!(b.load().verify_csrf(&token), Ok(()), "{name}: privilege");
        // Unless the application renews it.
        let mut s = b.load();
        assert!(s.reset_csrf(), "{name}");
        b.save(&mut s);
        assert_eq!(
            b.load().verify_csrf(&token),
            Err(CsrfError::NoSecret),
            "{name}"
        );
    }
}

#[test]
fn debug_does_not_leak_the_csrf_secret() {
    for (name, mut b) in browsers() {
        let _ = page_with_token(&mut b);
        let loaded = b.manager.load(&b.cookie).unwrap();
        let s = &loaded.session;
        // The stored entry, read as the application could.
        let entry: serde_json::Value = s.get(CSRF_KEY).unwrap().unwrap();
        let secret = entry["secret"].as_str().unwrap().to_owned();
        assert_eq!(secret.len(), 43, "{name}");
        for shown in [
            format!("{s:?}"),
            format!("{s:#?}"),
            format!("{loaded:?}"),
            format!("{:?}", s.data()),
        ] {
            assert!(!shown.contains(&secret), "{name}: {shown}");
        }
        // Nor is the secret what pages are given.
        let mut s = loaded.session;
        assert!(!s.csrf_token().contains(&secret), "{name}");
    }
}

#[test]
fn flashes_survive_a_redirect_and_are_gone_once_taken() {
    for (name, mut b) in browsers() {
        let mut s = b.load();
        s.flash("notice", "Saved.").unwrap();
        s.flash("error", "But not everything.").unwrap();
        assert!(s.is_modified(), "{name}");
        b.save(&mut s);

        // The page after the redirect.
        let mut s = b.load();
        assert_eq!(s.peek_flashes().len(), 2, "{name}");
        let shown = s.take_flashes();
        let parts: Vec<_> = shown.iter().map(|f| (f.kind(), f.message())).collect();
        assert_eq!(
            parts,
            [("notice", "Saved."), ("error", "But not everything.")],
            "{name}"
        );
        assert!(s.is_modified(), "{name}");
        b.save(&mut s);

        // A reload shows nothing, and taking nothing writes nothing.
        let mut s = b.load();
        assert!(s.take_flashes().is_empty(), "{name}");
        assert!(!s.is_modified(), "{name}");
        assert!(!s.keys().any(|k| k == FLASH_KEY), "{name}");
    }
}

#[test]
fn flashes_survive_rotation_and_login() {
    for (name, mut b) in browsers() {
        let mut s = b.load();
        s.flash("notice", "Before rotation.").unwrap();
        b.save(&mut s);
        let mut s = b.load();
        b.rotate(&mut s);
        s.flash("notice", "Before login.").unwrap();
        b.save(&mut s);

        // An anonymous session's flashes are carried over by the login.
        let mut s = b.load();
        b.login(&mut s, "alice");
        let s = b.load();
        let messages: Vec<_> = s
            .peek_flashes()
            .iter()
            .map(|f| f.message().to_owned())
            .collect();
        assert_eq!(messages, ["Before rotation.", "Before login."], "{name}");

        // A login as another user starts empty: nothing of alice's passes.
        let mut s = b.load();
        b.login(&mut s, "bob");
        assert!(s.peek_flashes().is_empty(), "{name}");
        s.flash("notice", "Welcome, bob.").unwrap();
        b.save(&mut s);
        let mut s = b.load();
        assert_eq!(s.take_flashes()[0].message(), "Welcome, bob.", "{name}");
    }
}

#[test]
fn flash_limits_are_enforced_with_typed_errors() {
    for (name, mut b) in browsers() {
        let mut s = b.load();
        let kind = "k".repeat(MAX_FLASH_KIND_LEN + 1);
        assert_eq!(
            s.flash(&kind, "hi"),
            Err(FlashError::TooLong {
                field: "kind",
                len: MAX_FLASH_KIND_LEN + 1,
                limit: MAX_FLASH_KIND_LEN
            }),
            "{name}"
        );
        let message = "m".repeat(MAX_FLASH_MESSAGE_LEN + 1);
        assert!(
            matches!(
                s.flash("notice", &message),
                Err(FlashError::TooLong {
                    field: "message",
                    ..
                })
            ),
            "{name}"
        );
        assert!(!s.is_modified(), "{name}: a refused flash changes nothing");
        for n in 0..MAX_FLASHES {
            s.flash("notice", &format!("{n}")).unwrap();
        }
        b.save(&mut s);
        // The limit holds across requests: the stored ones count.
        let mut s = b.load();
        assert_eq!(
            s.flash("notice", "one more"),
            Err(FlashError::TooMany { limit: MAX_FLASHES }),
            "{name}"
        );
        assert_eq!(s.take_flashes().len(), MAX_FLASHES, "{name}");
        assert!(s.flash("notice", "room again").is_ok(), "{name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever a request carries, the answer is a typed refusal, never a
    /// panic, and only a well-formed token can get as far as the secret.
    #[test]
    fn arbitrary_tokens_are_refused_without_panicking(
        token in prop_oneof![
            ".{0,200}",
            "[A-Za-z0-9_-]{86}",
            "[A-Za-z0-9_=+/-]{84,88}",
        ]
    ) {
        let manager = StoreManager::new(MemoryStore::new());
        let mut s = manager.load(manager.create(NewSession::new()).unwrap().token()).unwrap().session;
        let _ = s.csrf_token();
        let refused = s.verify_csrf(&token).unwrap_err();
        if token.len() != CSRF_TOKEN_LEN {
            prop_assert_eq!(refused, if token.is_empty() { CsrfError::Missing } else { CsrfError::Malformed });
        } else {
            prop_assert!(refused == CsrfError::Malformed || refused == CsrfError::Mismatch, "{:?}", refused);
        }
    }
}
