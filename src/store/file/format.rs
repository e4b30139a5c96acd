//! The session file format, byte by byte: [`SESSION_HEADER`] (magic bytes
//! and a format version), then the [`Record`] as one line of JSON. Stable:
//! a new layout is a new version, and a reader refuses versions it does
//! not know with [`DecodeError::UnsupportedVersion`].

use crate::store::Record;

/// The first line of every session file: magic bytes and format version.
///
/// # Example
/// ```
/// // What `head -1 DIR/sessions/*/*.session` prints.
/// assert_eq!(latchkey::store::file::SESSION_HEADER, "latchkey-session 1\n");
/// ```
pub const SESSION_HEADER: &str = "latchkey-session 1\n";
pub(super) const SESSION_MAGIC: &str = "latchkey-session ";
/// Files larger than this are not read into memory: no record is that big,
/// so such a file is foreign or corrupt.
pub(super) const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why bytes are not a session file.
///
/// # Example
/// ```
/// use latchkey::store::file::{decode, DecodeError};
/// assert!(matches!(decode(b""), Err(DecodeError::Empty)));
/// assert!(matches!(decode(b"GIF89a"), Err(DecodeError::NotASessionFile)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The file is empty.
    #[error("the session file is empty")]
    Empty,
    /// The file does not start with the session header: a foreign file.
    #[error("not a latchkey session file (bad magic bytes)")]
    NotASessionFile,
    /// The header names a format version this build cannot read.
    #[error("unsupported session file format version")]
    UnsupportedVersion,
    /// The file exceeds the size limit for a record.
    #[error("the session file is larger than any record")]
    TooLarge,
    /// The body after the header is not a valid record.
    #[error("the session file body is not a valid record")]
    Body(#[source] serde_json::Error),
}

/// Encodes a record as a session file: [`SESSION_HEADER`] then a line of
/// JSON.
///
/// # Errors
/// The serde error if the record does not serialize (it always does for a
/// record built through this crate).
///
/// # Example
/// ```
/// use latchkey::store::file::{decode, encode, SESSION_HEADER};
/// use latchkey::{EndReason, Timestamp};
/// use latchkey::store::{Record, RecordState};
///
/// let r = Record {
///     version: 1,
///     expires_at: Timestamp::from_unix_millis(10),
///     state: RecordState::Ended { reason: EndReason::Logout, at: Timestamp::UNIX_EPOCH },
/// };
/// let bytes = encode(&r)?;
/// assert!(bytes.starts_with(SESSION_HEADER.as_bytes()));
/// assert_eq!(decode(&bytes)?, r);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode(record: &Record) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(SESSION_HEADER.as_bytes());
    serde_json::to_writer(&mut out, record)?;
    out.push(b'\n');
    Ok(out)
}

/// Decodes the bytes of a session file, as [`FileStore`](super::FileStore) does on every
/// read. Arbitrary input gives an error, never a panic.
///
/// # Errors
/// [`DecodeError`] saying what is wrong.
///
/// # Example
/// ```
/// use latchkey::store::file::{decode, DecodeError};
/// let e = decode(b"latchkey-session 1\n{\"version\":").unwrap_err();
/// assert!(matches!(e, DecodeError::Body(_)));
/// assert!(matches!(decode(b"latchkey-session 9\n{}"), Err(DecodeError::UnsupportedVersion)));
/// ```
pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(DecodeError::TooLarge);
    }
    let Some(body) = bytes.strip_prefix(SESSION_HEADER.as_bytes()) else {
        return Err(if bytes.starts_with(SESSION_MAGIC.as_bytes()) {
            DecodeError::UnsupportedVersion
        } else {
            DecodeError::NotASessionFile
        });
    };
    serde_json::from_slice(body).map_err(DecodeError::Body)
}
