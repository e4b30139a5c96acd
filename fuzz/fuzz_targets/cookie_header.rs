//! Arbitrary bytes as a `Cookie` header: never a panic; whatever is found
//! is a non-empty run of cookie octets that really occurs in the header;
//! splitting the header at `;` into separate headers finds the same thing;
//! and a header with our cookie appended once more is never read as some
//! other value.
#![no_main]

use latchkey::{CookieConfig, CookieError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = CookieConfig::default();
    let found = config.find_token(data);
    if let Ok(Some(value)) = found {
        assert!(!value.is_empty());
        assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b";,\"\\".contains(&b))
        );
        assert!(data.windows(value.len()).any(|w| w == value.as_bytes()));
    }
    // Cookies split across headers (HTTP/2) must read the same.
    let parts: Vec<&[u8]> = data.split(|&b| b == b';').collect();
    let split = config.find_token_in(parts.iter().copied());
    if !matches!(found, Err(CookieError::HeaderTooLarge { .. })) {
        assert_eq!(found, split);
    }
    // Adding a known value: either it is what was found, or the lookup
    // refuses; an attacker-controlled prefix never silently wins.
    let mut more = data.to_vec();
    more.extend_from_slice(b"; __Host-session=known");
    match config.find_token(&more) {
        Ok(Some(v)) => assert_eq!(v, "known"),
        Ok(None) => panic!("an appended cookie must be found"),
        Err(CookieError::Ambiguous | CookieError::HeaderTooLarge { .. }) => {}
        Err(e) => panic!("unexpected {e}"),
    }
});
