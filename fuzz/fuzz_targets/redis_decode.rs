//! Arbitrary bytes as a RedisStore value: never a panic, and whatever
//! decodes re-encodes to a value that decodes to the same record.
#![no_main]

use latchkey::store::redis::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = decode(data) {
        let again = encode(&record).expect("a decoded record encodes");
        let back = decode(again.as_bytes()).expect("an encoded record decodes");
        assert_eq!(back, record, "decode(encode(r)) must be r");
    }
});
