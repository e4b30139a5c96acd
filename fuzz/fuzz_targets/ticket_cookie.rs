//! Arbitrary cookie settings (name, `Domain` and `Path` lengths, lifetime,
//! flags) and session sizes drive ticket issuing through a `TicketManager`
//! told its cookie with `with_cookie`. The invariant: whenever issuing
//! succeeds (create, then save, rotate, a privilege change or a login),
//! `set_cookie` accepts the ticket, under the longest `Max-Age` too; when it
//! fails, it is `TicketTooLarge` with the manager's budget as the limit (or
//! a policy limit), never a panic.
//!
//! Input bytes, missing ones read as zero:
//! - 0: flags: bit 0 persistent cookie, bits 1-2 `SameSite`, bit 3 plain
//!   http, bit 4 script-readable, bits 5-7 the operation after `create`;
//! - 1-2, 3-4, 5-6: name, `Domain` (0: none) and `Path` lengths;
//! - 7-8: bytes of session data; 9: user name length (0: none);
//!   10: device label length; 11-12: the operation's size (data added, or
//!   the new user's name length).
//!
//! Cheap per iteration: one config, one manager (a few SHA-256 blocks of
//! key schedule), at most two tickets, no store.
#![no_main]

use latchkey::{
    CookieConfig, CookieLifetime, Error, Issued, KeyRing, MAX_SET_COOKIE_BYTES, MAX_TICKET_LEN,
    NewSession, Policy, SameSite, TicketKey, TicketManager, Timestamp,
};
use libfuzzer_sys::fuzz_target;

const NOW: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

fn byte(data: &[u8], i: usize) -> u8 {
    data.get(i).copied().unwrap_or(0)
}

fn word(data: &[u8], i: usize) -> usize {
    usize::from(u16::from_be_bytes([byte(data, i), byte(data, i + 1)]))
}

/// A valid host name of `len` bytes: labels of `a` joined by dots.
fn domain(len: usize) -> String {
    (0..len)
        .map(|i| if i % 10 == 9 && i + 1 < len { '.' } else { 'a' })
        .collect()
}

fn config(data: &[u8]) -> Option<CookieConfig> {
    let flags = byte(data, 0);
    let mut b = CookieConfig::builder()
        .with_name("n".repeat(1 + word(data, 1) % 4400))
        .with_path(format!("/{}", "p".repeat(word(data, 5) % 4400)))
        .with_same_site(match (flags >> 1) & 3 {
            1 => SameSite::Strict,
            2 => SameSite::None,
            _ => SameSite::Lax,
        });
    if flags & 1 == 1 {
        b = b.with_lifetime(CookieLifetime::UntilAbsoluteDeadline);
    }
    if flags & 8 != 0 {
        b = b.danger_insecure_http();
    }
    if flags & 16 != 0 {
        b = b.danger_script_readable();
    }
    let domain_len = word(data, 3) % 300;
    if domain_len > 0 {
        b = b.with_domain(domain(domain_len));
    }
    // Some combinations are refused at build (SameSite=None without
    // Secure, a domain over 253 bytes): nothing to issue for them.
    b.build().ok()
}

/// The invariant for one issuing call.
fn check(cookie: &CookieConfig, manager: &TicketManager, result: Result<Issued, Error>) {
    match result {
        Ok(issued) => {
            assert!(issued.token().len() <= manager.max_ticket_len());
            // Issued at NOW: the Max-Age it renders with; and from the
            // epoch, the longest Max-Age there is (the 400-day cap).
            for rendered in [
                cookie.set_cookie(&issued),
                cookie.set_cookie_at(&issued, Timestamp::UNIX_EPOCH),
            ] {
                match rendered {
                    Ok(v) => assert!(v.len() <= MAX_SET_COOKIE_BYTES),
                    Err(e) => panic!(
                        "a {}-byte ticket was issued that the cookie refuses: {e}",
                        issued.token().len()
                    ),
                }
            }
        }
        Err(Error::TicketTooLarge { size, limit }) => {
            assert_eq!(limit, manager.max_ticket_len());
            assert!(size > limit);
        }
        Err(Error::TooLarge { .. } | Error::LabelTooLong { .. }) => {}
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(cookie) = config(data) else {
        return;
    };
    let key = TicketKey::try_from(&[0x42u8; 32][..]).unwrap();
    // The purpose is the cookie name where it fits the format's 255 bytes.
    let purpose = if cookie.name().len() <= 255 {
        cookie.name()
    } else {
        "session"
    };
    let manager = TicketManager::new(purpose, KeyRing::new(1, key))
        .unwrap()
        .with_policy(Policy::default().without_user_cap())
        .with_cookie(&cookie);
    assert!(manager.max_ticket_len() <= cookie.max_value_len());
    assert!(manager.max_ticket_len() <= MAX_TICKET_LEN);

    let mut new = NewSession::new()
        .with_value("d", &"x".repeat(word(data, 7) % 4500))
        .unwrap();
    let user_len = usize::from(byte(data, 9));
    if user_len > 0 {
        new = new.with_user("u".repeat(user_len));
    }
    let device_len = usize::from(byte(data, 10));
    if device_len > 0 {
        new = new.with_device("d".repeat(device_len));
    }
    let created = manager.create_at(new, NOW);
    let Ok(issued) = created else {
        check(&cookie, &manager, created);
        return;
    };
    check(&cookie, &manager, Ok(issued.clone()));

    let mut session = manager
        .load_at(issued.token(), NOW)
        .expect("a ticket just issued loads")
        .session;
    let size = word(data, 11) % 4500;
    let result = match (byte(data, 0) >> 5) % 5 {
        0 => return,
        1 => {
            session.insert("more", &"y".repeat(size)).unwrap();
            match manager.save_at(&mut session, NOW) {
                Ok(saved) => Ok(saved.expect("the data changed")),
                Err(e) => Err(e),
            }
        }
        2 => manager.rotate_at(&mut session, NOW),
        3 => manager.change_privilege_at(&mut session, NOW),
        // Another user (or the same, when the lengths agree) on this
        // session: a longer name can push the ticket past the budget.
        _ => manager.login_at(&mut session, &"v".repeat(1 + size % 300), NOW),
    };
    check(&cookie, &manager, result);
});
