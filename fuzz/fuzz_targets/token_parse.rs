//! Arbitrary bytes as a session token: never a panic, and whatever parses
//! re-encodes to exactly the input (one spelling per ID).
#![no_main]

use latchkey::SessionId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = SessionId::parse(s) {
        assert_eq!(id.to_token(), s, "a parsed token must re-encode to itself");
        assert_eq!(s.len(), SessionId::TOKEN_LEN);
    }
});
