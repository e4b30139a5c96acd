//! Finding the session cookie in large `Cookie` headers (issue 26, item 9):
//! other applications on the same host may fill the header, and that must
//! neither hide our cookie nor turn the request into an error page.

use std::sync::{Arc, Mutex};

use latchkey::{
    CookieConfig, CookieError, DEFAULT_MAX_HEADER_BYTES, Event, KeyRing, MAX_TICKET_LEN, Observer,
    RejectKind, SessionManager, TicketKey, TicketManager,
};

const OURS: &str = "__Host-session=our-token";

/// At least `n` bytes of other applications' cookies: `app0=vvv…; app1=…`.
fn foreign(n: usize) -> String {
    let mut out = String::with_capacity(n + 128);
    let mut i = 0;
    while out.len() < n {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&format!("app{i}={}", "v".repeat(90)));
        i += 1;
    }
    out
}

#[test]
fn our_cookie_is_found_anywhere_in_16_kib_of_other_apps_cookies() {
    let c = CookieConfig::default();
    let other = foreign(16 * 1024);
    let (left, right) = other.split_at(other.find("; app80=").unwrap());
    let right = &right[2..];
    for header in [
        format!("{OURS}; {other}"),
        format!("{left}; {OURS}; {right}"),
        format!("{other}; {OURS}"),
    ] {
        assert!(header.len() > 16 * 1024);
        assert_eq!(c.find_token(&header), Ok(Some("our-token")));
    }
    assert_eq!(c.find_token(&other), Ok(None), "absent is not an error");
}

#[test]
fn our_cookie_is_found_when_other_apps_cookies_are_split_across_headers() {
    // HTTP/2 sends every cookie as its own header (RFC 9113 §8.2.3).
    let c = CookieConfig::default();
    let other = foreign(20 * 1024);
    let mut headers: Vec<&[u8]> = other.split("; ").map(str::as_bytes).collect();
    headers.insert(headers.len() / 2, OURS.as_bytes());
    assert_eq!(c.find_token_in(headers), Ok(Some("our-token")));
}

#[test]
fn the_default_scan_limit_is_64_kib_and_a_header_of_exactly_that_is_read() {
    assert_eq!(DEFAULT_MAX_HEADER_BYTES, 64 * 1024);
    let c = CookieConfig::default();
    let pad = DEFAULT_MAX_HEADER_BYTES - OURS.len() - "; pad=".len();
    let header = format!("{OURS}; pad={}", "x".repeat(pad));
    assert_eq!(header.len(), DEFAULT_MAX_HEADER_BYTES);
    assert_eq!(c.find_token(&header), Ok(Some("our-token")));
}

#[test]
fn beyond_the_scan_limit_the_request_has_no_session_and_keeps_its_cookie() {
    let c = CookieConfig::default();
    let header = format!("{OURS}; {}", foreign(DEFAULT_MAX_HEADER_BYTES));
    let err = c.find_token(&header).unwrap_err();
    assert_eq!(
        err,
        CookieError::HeaderTooLarge {
            size: header.len(),
            limit: DEFAULT_MAX_HEADER_BYTES
        }
    );
    // Not a 400: the request runs logged out, like any other request
    // without a usable session cookie...
    assert!(err.is_rejection());
    // ...but the cookie is left alone: it was not even looked at, and may
    // be fine once the other cookies are gone.
    assert!(!err.clears_cookie());
    // Even with our cookie first: a header past the limit is not partly
    // read, so a tossed cookie can never be the only one seen.
    let tossed = format!("__Host-session=tossed; {}; {OURS}", foreign(70_000));
    assert!(matches!(
        c.find_token(&tossed),
        Err(CookieError::HeaderTooLarge { .. })
    ));
}

#[test]
fn the_scan_limit_is_configurable() {
    let small = CookieConfig::builder()
        .with_max_header_bytes(100)
        .build()
        .unwrap();
    assert_eq!(small.max_header_bytes(), 100);
    let fits = format!("{OURS}; {}", "a=b; ".repeat(14));
    assert!(fits.len() <= 100);
    assert_eq!(small.find_token(fits.trim_end()), Ok(Some("our-token")));
    let over = format!("{OURS}; {}", "a=b; ".repeat(20));
    assert!(matches!(
        small.find_token(&over),
        Err(CookieError::HeaderTooLarge { limit: 100, .. })
    ));
}

#[test]
fn thousands_of_identical_copies_of_our_cookie_read_as_one() {
    let c = CookieConfig::default();
    let header = vec![OURS; 2000].join("; ");
    assert!(header.len() > 32 * 1024);
    assert_eq!(c.find_token(&header), Ok(Some("our-token")));
}

#[test]
fn one_different_copy_among_thousands_makes_the_cookie_ambiguous() {
    // Cookie tossing: neither copy is trusted, wherever the odd one is.
    let c = CookieConfig::default();
    for at in [0, 1000, 1999] {
        let mut copies = vec![OURS; 2000];
        copies[at] = "__Host-session=tossed";
        let err = c.find_token(&copies.join("; ")).unwrap_err();
        assert_eq!(err, CookieError::Ambiguous);
        assert!(err.is_rejection() && err.clears_cookie());
    }
}

#[test]
fn a_malformed_cookie_of_ours_in_a_large_header_means_no_session() {
    let c = CookieConfig::default();
    for bad in [
        "__Host-session=a b",
        "__Host-session=",
        "__Host-session=\"x",
    ] {
        let header = format!("{}; {bad}; theme=dark", foreign(10 * 1024));
        let err = c.find_token(&header).unwrap_err();
        assert_eq!(err, CookieError::InvalidValue, "{bad:?}");
        assert!(err.is_rejection() && err.clears_cookie());
    }
    // Junk beside a good copy is skipped, not a reason to refuse it.
    let header = format!("__Host-session=a b; {}; {OURS}", foreign(10 * 1024));
    assert_eq!(c.find_token(&header), Ok(Some("our-token")));
}

/// An oversized value of ours is handed over as it is: the manager refuses
/// it before decoding (no ticket we issue is that long), as a typed
/// rejection its observer hears about.
#[test]
fn an_oversized_cookie_of_ours_is_refused_by_the_manager_and_reported() {
    #[derive(Debug, Default)]
    struct Log(Mutex<Vec<Event>>);
    impl Observer for Log {
        fn on_event(&self, e: &Event) {
            self.0.lock().unwrap().push(e.clone());
        }
    }
    let log = Arc::new(Log::default());
    let keys = KeyRing::new(1, TicketKey::generate());
    let tickets = TicketManager::new("__Host-session", keys)
        .unwrap()
        .with_observer(log.clone());
    let c = CookieConfig::default();
    let huge = format!("lk1.{}", "A".repeat(MAX_TICKET_LEN));
    let header = format!("{}; __Host-session={huge}", foreign(10 * 1024));
    let token = c.find_token(&header).unwrap().unwrap();
    assert_eq!(token, huge);
    let err = tickets.load(token).unwrap_err();
    assert!(err.is_rejection() && err.clears_cookie(), "{err}");
    assert_eq!(err.reason(), "malformed");
    assert!(matches!(
        log.0.lock().unwrap()[..],
        [Event::Rejected {
            kind: RejectKind::Malformed,
            ..
        }]
    ));
}
