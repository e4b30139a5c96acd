//! [`SessionData`]: a session's key/value data, kept as its JSON text and
//! parsed only when first read. Its own module, below both the store layer
//! (which keeps it) and the session layer (which hands it out), so neither
//! imports the other through it.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A session's key/value data: a JSON object.
///
/// Kept as its encoded text and parsed only when first read, so loading a
/// session whose data the request never touches costs no JSON parsing.
#[derive(Clone, Default)]
pub struct SessionData {
    /// The encoded object; stale while `dirty`.
    raw: Raw,
    /// The parsed object, filled on first access.
    /// Boxed so that a session that never reads its data (most loads) moves
    /// 16 fewer bytes through every step of a load.
    pub(crate) map: OnceLock<Box<Map<String, Value>>>,
    /// Whether `map` has changes `raw` lacks.
    pub(crate) dirty: bool,
}

/// The bytes a [`MemoryStore`](crate::MemoryStore) record keeps in place
/// for user, device and data together.
pub(crate) const INLINE: usize = 100;

/// The encoding behind [`SessionData`].
#[derive(Clone)]
enum Raw {
    /// Text: from a map, a ticket, a file or Redis.
    Text(Arc<str>),
    /// A copy of a memory-store record's bytes in place, of which
    /// `buf[start..start + len]` is the encoding. A load copies the whole
    /// buffer, a move of fixed size, with no allocation and no UTF-8 check
    /// while the record's cache lines are still arriving: done there, the
    /// two took about two thirds of reading a record at 100k live sessions
    /// (BENCHMARKS.md, "What the load goals took"). The bytes are
    /// checked as UTF-8 when the data is first read, which is when it is
    /// parsed at all.
    Inline {
        buf: [u8; INLINE],
        start: u8,
        len: u8,
    },
}

impl Default for Raw {
    fn default() -> Raw {
        Raw::Text(Arc::default())
    }
}

impl Raw {
    /// The encoding's length (bytes in place unchecked).
    fn len(&self) -> usize {
        match self {
            Raw::Text(text) => text.len(),
            Raw::Inline { len, .. } => usize::from(*len),
        }
    }

    /// The encoding. A memory store's bytes are always the UTF-8 it copied
    /// in from a `&str`, and nothing else writes them, so the empty text
    /// in the fallback needs memory corruption to be reached; it is there
    /// so that even then a read finds an empty map instead of a panic.
    fn text(&self) -> &str {
        match self {
            Raw::Text(text) => text,
            Raw::Inline { buf, start, len } => in_place_text(buf, *start, *len).unwrap_or_default(),
        }
    }
}

/// `map` encoded: in place when it fits in [`INLINE`] bytes, else as text.
/// `before` is the length of its last encoding: data that was far too
/// large for the buffer goes straight to text, without a first try.
fn encode(map: &Map<String, Value>, before: usize) -> Raw {
    if before > 2 * INLINE {
        return Raw::Text(
            serde_json::to_string(map)
                .unwrap_or_else(|_| "{}".into())
                .into(),
        );
    }
    let mut out = InPlaceWriter {
        buf: [0; INLINE],
        len: 0,
    };
    // Serializing a map of JSON values cannot fail but for want of room,
    // which stops the writing at the first byte past the buffer.
    if serde_json::to_writer(&mut out, map).is_ok()
        && let Ok(len) = u8::try_from(out.len)
    {
        return Raw::Inline {
            buf: out.buf,
            start: 0,
            len,
        };
    }
    Raw::Text(
        serde_json::to_string(map)
            .unwrap_or_else(|_| "{}".into())
            .into(),
    )
}

/// Writes into a buffer of [`INLINE`] bytes, refusing what does not fit.
struct InPlaceWriter {
    buf: [u8; INLINE],
    len: usize,
}

impl std::io::Write for InPlaceWriter {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.write_all(bytes).map(|()| bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let end = self.len + bytes.len();
        match self.buf.get_mut(self.len..end) {
            Some(to) => {
                to.copy_from_slice(bytes);
                self.len = end;
                Ok(())
            }
            None => Err(std::io::ErrorKind::WriteZero.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `len` bytes at `start` of a buffer kept in place, as text: `None`
/// if they lie outside it or are not UTF-8.
#[inline]
pub(crate) fn in_place_text(buf: &[u8; INLINE], start: u8, len: u8) -> Option<&str> {
    let start = usize::from(start);
    std::str::from_utf8(buf.get(start..start + usize::from(len))?).ok()
}

impl SessionData {
    /// Data holding the given object.
    ///
    /// # Example
    /// ```
    /// use latchkey::SessionData;
    /// let mut m = serde_json::Map::new();
    /// m.insert("theme".into(), "dark".into());
    /// let data = SessionData::from_map(m);
    /// assert_eq!(data.encoded().as_ref(), r#"{"theme":"dark"}"#);
    /// ```
    pub fn from_map(map: Map<String, Value>) -> SessionData {
        let raw: Arc<str> = Value::Object(map).to_string().into();
        SessionData {
            raw: Raw::Text(raw),
            map: OnceLock::new(),
            dirty: false,
        }
    }

    /// Clean data from its encoding, parsed only if read. The caller
    /// vouches that `raw` is a JSON object (a ticket's data, under its MAC;
    /// or an encoding a store kept, which only hands back what it was given).
    pub(crate) fn from_encoded(raw: Arc<str>) -> SessionData {
        SessionData {
            raw: Raw::Text(raw),
            map: OnceLock::new(),
            dirty: false,
        }
    }

    /// Clean data from its encoding, as [`from_encoded`](Self::from_encoded)
    /// vouches, copied in place when it fits (no allocation) and into an
    /// `Arc` when it does not.
    #[inline]
    pub(crate) fn from_text(raw: &str) -> SessionData {
        match u8::try_from(raw.len()) {
            Ok(len) if raw.len() <= INLINE => {
                let mut buf = [0u8; INLINE];
                buf[..raw.len()].copy_from_slice(raw.as_bytes());
                SessionData::from_inline(buf, 0, len)
            }
            _ => SessionData::from_encoded(Arc::from(raw)),
        }
    }

    /// Clean data whose encoding is `buf[start..start + len]`: bytes a
    /// memory store copied in from a `&str`, checked as UTF-8 when read.
    #[inline]
    pub(crate) fn from_inline(buf: [u8; INLINE], start: u8, len: u8) -> SessionData {
        SessionData {
            raw: Raw::Inline { buf, start, len },
            map: OnceLock::new(),
            dirty: false,
        }
    }

    /// The current encoding, borrowed unless changes must be encoded.
    pub(crate) fn encoded_text(&self) -> Cow<'_, str> {
        if self.dirty
            && let Some(m) = self.map.get()
        {
            return serde_json::to_string(m)
                .unwrap_or_else(|_| "{}".into())
                .into();
        }
        self.raw.text().into()
    }

    /// The current encoding's bytes, as [`encoded_text`](Self::encoded_text)
    /// but with bytes in place handed over unchecked: a memory store copies
    /// them into a record in place, where they are checked when read.
    pub(crate) fn encoded_bytes(&self) -> Cow<'_, [u8]> {
        match (&self.raw, self.dirty) {
            (Raw::Inline { buf, start, len }, false) => {
                let start = usize::from(*start);
                buf.get(start..start + usize::from(*len))
                    .unwrap_or_default()
                    .into()
            }
            _ => match self.encoded_text() {
                Cow::Borrowed(text) => text.as_bytes().into(),
                Cow::Owned(text) => text.into_bytes().into(),
            },
        }
    }

    /// The encoded JSON object.
    ///
    /// # Example
    /// ```
    /// use latchkey::SessionData;
    /// assert_eq!(SessionData::default().encoded().len(), 0);
    /// ```
    pub fn encoded(&self) -> Arc<str> {
        match (&self.raw, self.dirty) {
            (Raw::Text(text), false) => text.clone(),
            _ => Arc::from(self.encoded_text()),
        }
    }

    /// The length of the current encoding, without checking bytes in place
    /// as UTF-8 (bytes that are not would read as empty text: this is the
    /// larger figure, so a size check on it is never the laxer one).
    pub(crate) fn encoded_len(&self) -> usize {
        if self.dirty {
            self.encoded_text().len()
        } else {
            self.raw.len()
        }
    }

    /// Clean data with the same content, holding only its encoding: what a
    /// manager hands to a store. Changes are encoded straight into a
    /// buffer in place when they fit, as a memory store's record keeps
    /// them, so a save of small data allocates nothing (and the session,
    /// which keeps this encoding after the save, frees nothing).
    pub(crate) fn to_stored(&self) -> SessionData {
        let raw = match (self.dirty, self.map.get()) {
            (true, Some(map)) => encode(map, self.raw.len()),
            _ => self.raw.clone(),
        };
        SessionData {
            raw,
            map: OnceLock::new(),
            dirty: false,
        }
    }

    /// Marks the data written: `stored` is this data's
    /// [`to_stored`](Self::to_stored), now in the store or ticket. The
    /// encoding becomes the stored one and the parsed map, which that
    /// encoding was made from, is kept, so a session read or changed again
    /// after a save parses nothing and frees nothing.
    #[inline]
    pub(crate) fn saved_as(&mut self, stored: SessionData) {
        self.raw = stored.raw;
        self.dirty = false;
    }

    pub(crate) fn map(&self) -> &Map<String, Value> {
        self.map.get_or_init(|| {
            // Every constructor leaves `raw` a valid JSON object (from_map
            // encodes one; Deserialize checks), so this parse cannot fail.
            Box::new(serde_json::from_str(self.raw.text()).unwrap_or_default())
        })
    }

    pub(crate) fn map_mut(&mut self) -> &mut Map<String, Value> {
        self.map();
        self.dirty = true;
        // map() just initialized the cell.
        match self.map.get_mut() {
            Some(m) => m,
            None => unreachable!("OnceLock initialized above"),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        if self.dirty || self.map.get().is_some() {
            self.map().is_empty()
        } else {
            let text = self.raw.text();
            text == "{}" || text.is_empty()
        }
    }
}

impl PartialEq for SessionData {
    fn eq(&self, other: &SessionData) -> bool {
        self.map() == other.map()
    }
}

impl fmt::Debug for SessionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Data is the application's business and may hold secrets (CSRF
        // tokens, OAuth state): show its size and keys, not its values.
        f.debug_struct("SessionData")
            .field("bytes", &self.encoded_text().len())
            .field("keys", &self.map().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Serialize for SessionData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let enc = self.encoded_text();
        let raw = if enc.is_empty() { "{}" } else { &enc };
        match serde_json::from_str::<&RawValue>(raw) {
            Ok(v) => v.serialize(s),
            Err(e) => Err(serde::ser::Error::custom(e)),
        }
    }
}

impl<'de> Deserialize<'de> for SessionData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SessionData, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        let raw: Arc<str> = Value::Object(map.clone()).to_string().into();
        Ok(SessionData {
            raw: Raw::Text(raw),
            map: OnceLock::from(Box::new(map)),
            dirty: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_place(text: &str, start: usize) -> SessionData {
        let mut buf = [0u8; INLINE];
        buf[..start].fill(b'u');
        buf[start..start + text.len()].copy_from_slice(text.as_bytes());
        let (Ok(start), Ok(len)) = (u8::try_from(start), u8::try_from(text.len())) else {
            panic!("test text too long");
        };
        SessionData::from_inline(buf, start, len)
    }

    #[test]
    fn floats_come_back_exactly_after_any_number_of_saves() {
        // Found by the file_decode and redis_decode fuzz targets: without
        // serde_json's exact float parsing, this value read back one bit
        // off, and drifted on every save.
        for v in [1.844_674_407_037_095_4e20, 0.1, 1e-300, f64::MAX, 5e-324] {
            let mut map = Map::new();
            map.insert("f".into(), Value::from(v));
            let mut data = SessionData::from_map(map);
            for _ in 0..3 {
                data = SessionData::from_encoded(data.encoded());
                assert_eq!(data.map()["f"].as_f64(), Some(v), "{}", data.encoded());
            }
        }
    }

    #[test]
    fn data_copied_in_place_behaves_as_the_same_text() {
        let text = r#"{"theme":"dark","csrf":"s3cr3t","n":[1,2]}"#;
        for start in [0, 5, INLINE - text.len()] {
            let inline = in_place(text, start);
            let plain = SessionData::from_encoded(Arc::from(text));
            assert_eq!(inline.encoded(), plain.encoded());
            assert_eq!(inline.encoded_text(), plain.encoded_text());
            assert_eq!(inline, plain);
            assert_eq!(format!("{inline:?}"), format!("{plain:?}"));
            assert_eq!(
                serde_json::to_string(&inline).ok(),
                serde_json::to_string(&plain).ok()
            );
            assert!(!inline.is_empty());
            // What a save hands the store is the same text.
            assert_eq!(inline.to_stored().encoded().as_ref(), text);
            // Changes are seen, and encoded, as for any data.
            let mut changed = inline.clone();
            changed.map_mut().insert("theme".into(), "light".into());
            assert_eq!(changed.map()["theme"], "light");
            assert!(changed.encoded().contains(r#""theme":"light""#));
            assert_eq!(inline.map()["theme"], "dark");
        }
        assert!(in_place("{}", 7).is_empty());
        assert!(in_place("", 0).is_empty());
    }

    #[test]
    fn data_from_text_is_in_place_when_it_fits_and_the_same_either_way() {
        let fits = format!(r#"{{"k":"{}"}}"#, "x".repeat(INLINE - 8));
        let spills = format!(r#"{{"k":"{}"}}"#, "x".repeat(INLINE - 7));
        assert_eq!((fits.len(), spills.len()), (INLINE, INLINE + 1));
        for (text, in_place) in [(&fits, true), (&spills, false), (&"{}".to_owned(), true)] {
            let data = SessionData::from_text(text);
            assert_eq!(matches!(data.raw, Raw::Inline { .. }), in_place, "{text}");
            assert_eq!(data, SessionData::from_encoded(Arc::from(text.as_str())));
            assert_eq!(data.encoded().as_ref(), text.as_str());
        }
    }

    #[test]
    fn changed_data_is_stored_in_place_when_it_fits_and_as_text_when_not() {
        // `{"k":"…"}` is the value's length plus 8.
        for (n, in_place) in [
            (0, true),
            (INLINE - 8, true),
            (INLINE - 7, false),
            (4096, false),
        ] {
            let mut data = SessionData::from_encoded(Arc::from(r#"{"a":1}"#));
            data.map_mut().remove("a");
            data.map_mut().insert("k".into(), "x".repeat(n).into());
            let want = serde_json::to_string(data.map()).unwrap();
            assert_eq!(data.encoded_len(), want.len());
            let stored = data.to_stored();
            assert_eq!(matches!(stored.raw, Raw::Inline { .. }), in_place, "{n}");
            assert_eq!(stored.encoded_text(), want);
            assert_eq!(stored.encoded_bytes().as_ref(), want.as_bytes());
            assert_eq!(stored.encoded_len(), want.len());
            assert_eq!(stored, data);
        }
    }

    #[test]
    fn data_that_was_large_and_shrank_is_stored_as_text_and_reads_the_same() {
        let mut data = SessionData::default();
        data.map_mut()
            .insert("k".into(), "x".repeat(4 * INLINE).into());
        let mut stored = data.to_stored();
        data.saved_as(stored);
        data.map_mut().insert("k".into(), "small".into());
        stored = data.to_stored();
        assert_eq!(stored.encoded_text(), r#"{"k":"small"}"#);
        data.saved_as(stored);
        data.map_mut().insert("k".into(), "again".into());
        // Now small, the next encoding is in place.
        assert!(matches!(data.to_stored().raw, Raw::Inline { .. }));
        assert_eq!(data.to_stored().encoded_text(), r#"{"k":"again"}"#);
    }

    #[test]
    fn encoded_bytes_are_the_encoded_text_in_every_form() {
        let text = r#"{"theme":"dark"}"#;
        let mut changed = SessionData::from_encoded(Arc::from(r#"{}"#));
        changed.map_mut().insert("theme".into(), "dark".into());
        for data in [
            SessionData::from_encoded(Arc::from(text)),
            in_place(text, 9),
            changed,
        ] {
            assert_eq!(data.encoded_bytes().as_ref(), text.as_bytes());
            assert_eq!(data.encoded_len(), text.len());
        }
        // Bounds outside the buffer give no bytes rather than a panic.
        let mut buf = [b' '; INLINE];
        buf[..2].copy_from_slice(b"{}");
        assert!(
            SessionData::from_inline(buf, 99, 7)
                .encoded_bytes()
                .is_empty()
        );
    }

    #[test]
    fn data_in_place_that_is_not_utf8_reads_as_empty_instead_of_panicking() {
        let mut buf = [b' '; INLINE];
        buf[..7].copy_from_slice(b"{\"a\":1}");
        buf[3] = 0xff;
        let data = SessionData::from_inline(buf, 0, 7);
        assert_eq!(data.encoded().as_ref(), "");
        assert!(data.is_empty());
        assert_eq!(data, SessionData::default());
        // Out-of-range bounds are refused the same way.
        assert!(SessionData::from_inline(buf, 99, 7).is_empty());
    }

    #[test]
    fn saved_data_keeps_its_parsed_map_and_the_stored_encoding() {
        for start in [None, Some(3)] {
            let text = r#"{"a":1}"#;
            let mut data = match start {
                None => SessionData::from_encoded(Arc::from(text)),
                Some(at) => in_place(text, at),
            };
            data.map_mut().insert("b".into(), 2.into());
            let stored = data.to_stored();
            let written = stored.encoded();
            data.saved_as(stored);
            assert!(!data.dirty);
            assert!(data.map.get().is_some(), "the parsed map was dropped");
            assert_eq!(data.encoded(), written);
            assert_eq!(data.map()["b"], 2);
            // Saving clean data changes nothing.
            let again = data.to_stored();
            data.saved_as(again);
            assert_eq!(data.encoded(), written);
            // A change after the save is encoded from the kept map.
            data.map_mut().insert("c".into(), 3.into());
            let next: Map<String, Value> =
                serde_json::from_str(&data.to_stored().encoded()).unwrap();
            assert_eq!(
                next,
                serde_json::from_str(r#"{"a":1,"b":2,"c":3}"#).unwrap()
            );
        }
    }
}
