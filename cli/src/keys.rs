//! Ticket keys: `keygen`, and the key files `inspect --key-file` reads.
//!
//! A key file holds one key per line: `ID KEY` (a decimal `u32` key id,
//! whitespace, then the key in base64) or a bare `KEY`, which is tried
//! under whatever key id a ticket names. Blank lines and lines starting
//! with `#` are ignored. A key is what `TicketKey::from_base64` reads:
//! standard or URL-safe base64, padded or not, at least 32 bytes.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use latchkey::TicketKey;
use serde_json::json;

use crate::error::Failure;
use crate::exit;
use crate::output;

/// One key of a key file.
#[derive(Debug)]
pub(crate) struct FileKey {
    /// 1-based line number, for messages (never the line itself).
    pub(crate) line: usize,
    /// The key id, or `None` for a bare key.
    pub(crate) id: Option<u32>,
    pub(crate) key: TicketKey,
}

/// Reads a key file. Messages name the line, never its text: it is a key.
pub(crate) fn read_key_file(path: &Path) -> Result<Vec<FileKey>, Failure> {
    let text = fs::read_to_string(path).map_err(|source| Failure::Input {
        context: format!("cannot read the key file {}", path.display()),
        source,
    })?;
    let mut keys: Vec<FileKey> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: String| {
            Failure::Usage(format!("key file {} line {line_no}: {why}", path.display()))
        };
        let mut parts = line.split_whitespace();
        let (id, key_text) = match (parts.next(), parts.next(), parts.next()) {
            (Some(key), None, None) => (None, key),
            (Some(id), Some(key), None) => {
                let id = id
                    .parse::<u32>()
                    .map_err(|_| bad("the key id is not a number from 0 to 4294967295".into()))?;
                (Some(id), key)
            }
            _ => return Err(bad("expected `ID KEY` or `KEY`".into())),
        };
        let key = TicketKey::from_base64(key_text).map_err(|e| bad(e.to_string()))?;
        if let Some(id) = id
            && keys.iter().any(|k| k.id == Some(id))
        {
            return Err(bad(format!("key id {id} appears twice")));
        }
        keys.push(FileKey {
            line: line_no,
            id,
            key,
        });
    }
    if keys.is_empty() {
        return Err(Failure::Usage(format!(
            "key file {} holds no keys",
            path.display()
        )));
    }
    Ok(keys)
}

/// `latchkey keygen`.
pub(crate) fn keygen(out: Option<&Path>, id: Option<u32>, json: bool) -> Result<u8, Failure> {
    let key = TicketKey::generate().to_base64();
    let line = match id {
        Some(id) => format!("{id} {key}\n"),
        None => format!("{key}\n"),
    };
    let Some(path) = out else {
        if json {
            output::json(&json!({ "key": key, "key_id": id }));
        } else {
            print!("{line}");
        }
        return Ok(exit::OK);
    };
    let io = |what: &str, source| Failure::Io {
        context: format!("cannot {what} the key file {}", path.display()),
        source,
    };
    // Created new, never over an existing file (which may hold the only
    // copy of a key in use), and 0600 from the first byte.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io("create", e))?;
    // The umask can only have narrowed 0600; make it exactly that.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| io("set the mode of", e))?;
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io("write", e))?;
    if json {
        output::json(&json!({ "written": path.display().to_string(), "key_id": id }));
    } else {
        println!(
            "wrote a new ticket key to {} (mode 0600); it is not shown",
            path.display()
        );
    }
    Ok(exit::OK)
}
