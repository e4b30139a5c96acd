//! Session data written as compact JSON straight into a ticket's buffer,
//! byte for byte what `serde_json::to_writer` writes, faster for the usual
//! shape: a flat object of strings and numbers.
//!
//! serde_json scans every string byte by byte through its escape table and
//! writes through `io::Write` a few bytes at a time. Here the top-level
//! object is walked directly, a string that needs no escaping (no control
//! character, `"` or `\`, checked eight bytes at a time) is copied whole,
//! and everything else (strings that need escaping, numbers, nested arrays
//! and objects) is handed to serde_json itself, so the output never differs
//! from its own. The tests compare the two on generated maps.

use std::io;

use serde_json::{Map, Value};

/// A bounded cursor over a byte buffer.
struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    /// Appends `bytes`, or `None` if they do not fit.
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.at.checked_add(bytes.len())?;
        self.buf.get_mut(self.at..end)?.copy_from_slice(bytes);
        self.at = end;
        Some(())
    }

    /// Appends whatever serde_json writes for `value`.
    fn serde<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Option<()> {
        serde_json::to_writer(&mut *self, value).ok()
    }
}

impl io::Write for Cursor<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        // Writes all or nothing: `Ok(0)` makes `write_all` fail with
        // `WriteZero` when the buffer is full.
        Ok(self.put(bytes).map_or(0, |()| bytes.len()))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether some byte of `s` must be escaped in a JSON string: a control
/// character, `"` or `\` (serde_json escapes exactly these).
#[inline]
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The classic word-at-a-time tests: `has_below(w, n)` says whether some
    // byte of `w` is under `n` (n <= 128; bytes of 0x80 and up, as in UTF-8
    // sequences, never count), and a byte equal to `c` is a zero byte of
    // `w ^ (c * ONES)`. The borrow can also flag a byte above a true match,
    // never one without any, so the yes/no answer is exact.
    let has_below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH != 0;
    let has_byte = |w: u64, c: u8| has_below(w ^ (ONES * u64::from(c)), 1);
    let (words, rest) = s.as_chunks::<8>();
    words.iter().any(|w| {
        let w = u64::from_le_bytes(*w);
        has_below(w, 0x20) || has_byte(w, b'"') || has_byte(w, b'\\')
    }) || rest.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends `s` as a JSON string.
#[inline]
fn string(out: &mut Cursor<'_>, s: &str) -> Option<()> {
    if needs_escape(s.as_bytes()) {
        return out.serde(s);
    }
    out.put(b"\"")?;
    out.put(s.as_bytes())?;
    out.put(b"\"")
}

/// Writes `map` as compact JSON into `buf`: the number of bytes written, or
/// `None` if it does not fit (or serde_json fails on a nested value). On
/// `None` the buffer holds junk.
pub(crate) fn write_object(map: &Map<String, Value>, buf: &mut [u8]) -> Option<usize> {
    let mut out = Cursor { buf, at: 0 };
    out.put(b"{")?;
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.put(b",")?;
        }
        string(&mut out, key)?;
        out.put(b":")?;
        match value {
            Value::String(s) => string(&mut out, s)?,
            Value::Bool(true) => out.put(b"true")?,
            Value::Bool(false) => out.put(b"false")?,
            Value::Null => out.put(b"null")?,
            other => out.serde(other)?,
        }
    }
    out.put(b"}")?;
    Some(out.at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ours(map: &Map<String, Value>) -> Option<String> {
        let mut buf = vec![0u8; 4096];
        let n = write_object(map, &mut buf)?;
        Some(String::from_utf8(buf[..n].to_vec()).unwrap())
    }

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let cases = [
            json!({}),
            json!({"user_id": 4_200_042, "theme": "dark", "csrf": "vQ3kR9zX2mL7pT5wY8nB4c"}),
            json!({"neg": -7, "float": 1.5e300, "small": 0.1, "t": true, "f": false, "n": null}),
            json!({"quote\"key": "back\\slash", "ctl": "a\u{1}b\nc\td\u{1f}", "del": "\u{7f}"}),
            json!({"unicode": "héllo wörld ✓ 🎉", "": ""}),
            json!({"nested": {"a": [1, "two", {"three": [null]}]}, "arr": []}),
            json!({"long": "x".repeat(100), "long_escaped": format!("{}\"", "y".repeat(70))}),
        ];
        for case in cases {
            let map = object(case);
            assert_eq!(ours(&map).unwrap(), serde_json::to_string(&map).unwrap());
        }
    }

    #[test]
    fn every_byte_needing_an_escape_is_found_in_every_position() {
        for len in 1..=20 {
            for pos in 0..len {
                for b in 0..=0x7fu8 {
                    let mut s = vec![b'a'; len];
                    s[pos] = b;
                    let must = b < 0x20 || b == b'"' || b == b'\\';
                    if must {
                        assert!(needs_escape(&s), "{len} {pos} {b:#x}");
                    }
                    let map = object(json!({ "k": String::from_utf8(s).unwrap() }));
                    assert_eq!(ours(&map).unwrap(), serde_json::to_string(&map).unwrap());
                }
            }
        }
        assert!(!needs_escape("plain ascii text, héllo, ✓".as_bytes()));
    }

    #[test]
    fn output_that_does_not_fit_is_refused() {
        let map = object(json!({"a": "bcdef", "g": 1}));
        let full = serde_json::to_string(&map).unwrap();
        let mut buf = vec![0u8; full.len()];
        assert_eq!(write_object(&map, &mut buf), Some(full.len()));
        for short in 0..full.len() {
            assert_eq!(write_object(&map, &mut buf[..short]), None, "{short}");
        }
        let nested = object(json!({"a": [1, 2, 3]}));
        let mut buf = [0u8; 10];
        assert_eq!(write_object(&nested, &mut buf), None);
    }

    proptest! {
        #[test]
        fn generated_maps_are_written_as_serde_json_writes_them(
            entries in prop::collection::vec(
                (any::<String>(), prop_oneof![
                    any::<String>().prop_map(Value::from),
                    any::<i64>().prop_map(Value::from),
                    any::<f64>().prop_map(Value::from),
                    any::<bool>().prop_map(Value::from),
                    Just(Value::Null),
                    prop::collection::vec(any::<String>(), 0..3).prop_map(Value::from),
                ]),
                0..6,
            )
        ) {
            let map: Map<String, Value> = entries.into_iter().collect();
            prop_assert_eq!(ours(&map).unwrap(), serde_json::to_string(&map).unwrap());
        }
    }
}
