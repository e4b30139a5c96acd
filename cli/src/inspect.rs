//! `latchkey inspect`: a session token's shape, a ticket's contents and
//! signature.
//!
//! The input is a secret and is never printed, quoted in an error, or put
//! in JSON: only what is derived from it (its fingerprint, store key,
//! decoded claims) is shown.

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey::{
    Clock as _, Error, KeyRing, MAX_TICKET_LEN, Policy, RESERVED_PREFIX, SessionId, StoreKey,
    SystemClock, TicketError, TicketManager, Timestamp, TokenError,
};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::error::Failure;
use crate::exit;
use crate::keys::{FileKey, read_key_file};
use crate::output::{self, safe};

/// The most read from standard input: far more than any ticket.
const MAX_INPUT: u64 = 64 * 1024;

/// `latchkey inspect`.
pub(crate) fn run(
    input: &str,
    key_file: Option<&Path>,
    purpose: &str,
    show_data: bool,
    json: bool,
) -> Result<u8, Failure> {
    let from_stdin = input == "-";
    let text = if from_stdin {
        read_stdin()?
    } else {
        if !json {
            eprintln!(
                "latchkey: note: a token on the command line lands in shell history; prefer `latchkey inspect -` and standard input"
            );
        }
        input.to_owned()
    };
    // Tokens and tickets never contain whitespace: trailing newlines from
    // `echo` or a pasted line are not part of them.
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    // Read the keys first: a bad key file is a usage error whatever the input.
    let keys = key_file.map(read_key_file).transpose()?;
    if is_ticket(text) {
        inspect_ticket(text, keys.as_deref(), purpose, show_data, json)
    } else {
        Ok(inspect_token(text, keys.is_some(), json))
    }
}

fn read_stdin() -> Result<String, Failure> {
    let mut buf = Vec::new();
    std::io::stdin()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(|source| Failure::Input {
            context: "cannot read standard input".into(),
            source,
        })?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(Failure::Usage(format!(
            "standard input holds more than {MAX_INPUT} bytes: not a token or ticket"
        )));
    }
    // Not UTF-8 cannot be a token; say so without showing the bytes.
    String::from_utf8(buf).map_err(|_| {
        Failure::Usage("standard input is not UTF-8 text: not a token or ticket".into())
    })
}

/// Whether `text` looks like a ticket: `lk`, a version number, a dot.
fn is_ticket(text: &str) -> bool {
    text.strip_prefix("lk").is_some_and(|rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest.as_bytes().get(digits) == Some(&b'.')
    })
}

fn token_error_code(e: TokenError) -> &'static str {
    match e {
        TokenError::Empty => "empty",
        TokenError::WrongLength(_) => "wrong_length",
        TokenError::BadCharacter => "bad_character",
        TokenError::NonCanonical => "non_canonical",
        _ => "invalid",
    }
}

fn inspect_token(text: &str, had_keys: bool, json: bool) -> u8 {
    let parsed = SessionId::parse(text);
    let note =
        had_keys.then_some("--key-file applies to tickets only; a session token has no signature");
    match parsed {
        Ok(id) => {
            let key = id.store_key();
            if json {
                output::json(&json!({
                    "kind": "session_token",
                    "valid": true,
                    "fingerprint": key.fingerprint().to_string(),
                    "store_key": key.to_hex(),
                    "note": note,
                }));
            } else {
                output::fields(&[
                    ("kind", "session token".to_owned()),
                    (
                        "shape",
                        "valid (43 base64url characters, canonical)".to_owned(),
                    ),
                    ("fingerprint", key.fingerprint().to_string()),
                    ("store key", key.to_hex()),
                ]);
                if let Some(note) = note {
                    println!("note: {note}");
                }
            }
            exit::OK
        }
        Err(e) => {
            if json {
                output::json(&json!({
                    "kind": "session_token",
                    "valid": false,
                    "error": { "code": token_error_code(e), "message": e.to_string() },
                }));
            } else {
                output::fields(&[
                    ("kind", "session token".to_owned()),
                    ("shape", format!("invalid: {e}")),
                ]);
            }
            exit::NO
        }
    }
}

/// A ticket's payload, decoded by `docs/TICKET_FORMAT.md` and not verified.
#[derive(Debug)]
struct Decoded {
    version: u8,
    purpose_id: [u8; 4],
    key_id: u32,
    flags: u8,
    created_at: Timestamp,
    issued_at: Timestamp,
    auth_at: Option<Timestamp>,
    idle_deadline: Timestamp,
    absolute_deadline: Timestamp,
    session_key: StoreKey,
    user: Option<String>,
    device: Option<String>,
    data: String,
}

const PREFIX: &str = "lk1.";
const HEADER_LEN: usize = 88;
const TAG_LEN: usize = 32;
/// The prefix plus the base64 of a header and a tag: 4 + 160.
const MIN_TICKET_LEN: usize = PREFIX.len() + (HEADER_LEN + TAG_LEN).div_ceil(3) * 4;
const FLAG_AUTH: u8 = 0b001;
const FLAG_USER: u8 = 0b010;
const FLAG_DEVICE: u8 = 0b100;

/// Decodes a version-1 ticket as strictly as a verifier does (steps 1–3 of
/// the format's "Verifying"), without a key.
fn decode(ticket: &str) -> Result<Decoded, TicketError> {
    let len = ticket.len();
    if len > MAX_TICKET_LEN {
        return Err(TicketError::TooLong {
            len,
            limit: MAX_TICKET_LEN,
        });
    }
    if len < MIN_TICKET_LEN {
        return Err(TicketError::TooShort(len));
    }
    let b64 = ticket
        .strip_prefix(PREFIX)
        .ok_or(TicketError::WrongPrefix)?;
    // The scalar engine refuses padding, foreign characters and non-zero
    // trailing bits: one spelling per ticket.
    let bin = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| TicketError::NotBase64)?;
    if bin.len() < HEADER_LEN + TAG_LEN {
        return Err(TicketError::TooShort(len));
    }
    if bin[0] != 1 {
        return Err(TicketError::UnsupportedVersion(bin[0]));
    }
    let u16_at = |at: usize| usize::from(u16::from_be_bytes([bin[at], bin[at + 1]]));
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bin[at..at + 8]);
        u64::from_be_bytes(b)
    };
    let flags = bin[9];
    let auth_raw = u64_at(26);
    let (user_len, device_len, data_len) = (u16_at(82), u16_at(84), u16_at(86));
    if flags & !(FLAG_AUTH | FLAG_USER | FLAG_DEVICE) != 0
        || (flags & FLAG_AUTH == 0 && auth_raw != 0)
        || (flags & FLAG_USER == 0 && user_len != 0)
        || (flags & FLAG_DEVICE == 0 && device_len != 0)
    {
        return Err(TicketError::BadFlags);
    }
    let body_len = HEADER_LEN + user_len + device_len + data_len;
    if body_len + TAG_LEN != bin.len() {
        return Err(TicketError::BadLength);
    }
    let text = |from: usize, n: usize| {
        std::str::from_utf8(&bin[from..from + n])
            .map(str::to_owned)
            .map_err(|_| TicketError::NotUtf8)
    };
    let user = text(HEADER_LEN, user_len)?;
    let device = text(HEADER_LEN + user_len, device_len)?;
    let data = text(HEADER_LEN + user_len + device_len, data_len)?;
    let mut session_key = [0u8; 32];
    session_key.copy_from_slice(&bin[50..82]);
    let ts = |at| Timestamp::from_unix_millis(u64_at(at));
    Ok(Decoded {
        version: bin[0],
        purpose_id: [bin[1], bin[2], bin[3], bin[4]],
        key_id: u32::from_be_bytes([bin[5], bin[6], bin[7], bin[8]]),
        flags,
        created_at: ts(10),
        issued_at: ts(18),
        auth_at: (flags & FLAG_AUTH != 0).then(|| ts(26)),
        idle_deadline: ts(34),
        absolute_deadline: ts(42),
        session_key: StoreKey::from_bytes(session_key),
        user: (flags & FLAG_USER != 0).then_some(user),
        device: (flags & FLAG_DEVICE != 0).then_some(device),
        data,
    })
}

/// The 4-byte id a purpose is named by in a ticket's header.
fn purpose_id(purpose: &str) -> [u8; 4] {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(b"latchkey/v1/ticket-purpose\0")
        .chain_update(purpose.as_bytes())
        .finalize()
        .into();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What checking a ticket against a key file found.
#[derive(Debug)]
struct Verification {
    /// The signature checked out under a key of the file.
    signature_valid: bool,
    /// Signature valid and not expired.
    verified: bool,
    /// The key file line whose key verified the signature.
    line: Option<usize>,
    /// The format's reason code when not verified.
    reason: Option<&'static str>,
    message: String,
}

/// A policy that caps nothing: the signature check runs through the
/// library's own verifier, and the deadlines are judged from the ticket's
/// claims here, because the application's policy is not known.
fn lenient_policy() -> Result<Policy, Failure> {
    let century = Duration::from_secs(100 * 365 * 24 * 3600);
    Policy::builder()
        .with_absolute_timeout(century)
        .with_idle_timeout(century)
        .build()
        .map_err(|e| Failure::Usage(format!("internal policy: {e}")))
}

fn verify(
    ticket: &str,
    decoded: &Decoded,
    keys: &[FileKey],
    purpose: &str,
    now: Timestamp,
) -> Result<Verification, Failure> {
    let fail = |reason: &'static str, message: String| Verification {
        signature_valid: false,
        verified: false,
        line: None,
        reason: Some(reason),
        message,
    };
    if purpose_id(purpose) != decoded.purpose_id {
        return Ok(fail(
            "wrong_purpose",
            format!(
                "the ticket was minted for another purpose than {:?}; give the cookie name with --purpose",
                safe(purpose)
            ),
        ));
    }
    // Keys under the ticket's id first, then bare keys (which carry no id).
    let candidates: Vec<&FileKey> = keys
        .iter()
        .filter(|k| k.id == Some(decoded.key_id))
        .chain(keys.iter().filter(|k| k.id.is_none()))
        .collect();
    if candidates.is_empty() {
        return Ok(fail(
            "unknown_key",
            format!(
                "the key file has no key with id {} (and no bare key to try)",
                decoded.key_id
            ),
        ));
    }
    let policy = lenient_policy()?;
    for candidate in candidates {
        let ring = KeyRing::new(decoded.key_id, candidate.key.clone());
        let manager = TicketManager::new(purpose, ring)
            .map_err(|e| Failure::Usage(format!("--purpose: {e}")))?
            .with_policy(policy.clone());
        // Loaded at its own issue instant: the library checks structure,
        // purpose, key and MAC; expiry is judged below against `now`.
        match manager.load_at(ticket, decoded.issued_at) {
            Ok(_) | Err(Error::IdleExpired { .. } | Error::AbsoluteExpired { .. }) => {
                let expired = if now >= decoded.absolute_deadline {
                    Some(("absolute_expired", "its absolute deadline has passed"))
                } else if now >= decoded.idle_deadline {
                    Some(("idle_expired", "its idle deadline has passed"))
                } else {
                    None
                };
                let which = match candidate.id {
                    Some(id) => format!("key id {id}"),
                    None => format!("the bare key tried as key id {}", decoded.key_id),
                };
                return Ok(match expired {
                    None => Verification {
                        signature_valid: true,
                        verified: true,
                        line: Some(candidate.line),
                        reason: None,
                        message: format!(
                            "verified with {which} (key file line {})",
                            candidate.line
                        ),
                    },
                    Some((reason, why)) => Verification {
                        signature_valid: true,
                        verified: false,
                        line: Some(candidate.line),
                        reason: Some(reason),
                        message: format!(
                            "the signature is valid ({which}, key file line {}) but {why}",
                            candidate.line
                        ),
                    },
                });
            }
            Err(Error::BadSignature) => continue,
            Err(e) => return Ok(fail(e.reason(), e.to_string())),
        }
    }
    Ok(fail(
        "bad_signature",
        format!(
            "the signature does not match any key tried for key id {}",
            decoded.key_id
        ),
    ))
}

/// The data's keys, and its values when asked for (reserved `latchkey.`
/// keys, which hold CSRF secrets and the like, always redacted).
fn data_view(data: &str, show: bool) -> (Vec<String>, Option<Value>) {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(data) else {
        return (
            Vec::new(),
            show.then(|| Value::String("<not a JSON object>".into())),
        );
    };
    let keys = map.keys().cloned().collect();
    let values = show.then(|| {
        Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if k.starts_with(RESERVED_PREFIX) {
                        Value::String("<redacted>".into())
                    } else {
                        v
                    };
                    (k, v)
                })
                .collect(),
        )
    });
    (keys, values)
}

fn inspect_ticket(
    ticket: &str,
    keys: Option<&[FileKey]>,
    purpose: &str,
    show_data: bool,
    json: bool,
) -> Result<u8, Failure> {
    let decoded = match decode(ticket) {
        Ok(d) => d,
        Err(e) => {
            if json {
                output::json(&json!({
                    "kind": "ticket",
                    "well_formed": false,
                    "error": { "code": "malformed", "message": e.to_string() },
                }));
            } else {
                output::fields(&[
                    ("kind", "ticket".to_owned()),
                    ("shape", format!("malformed: {e}")),
                ]);
            }
            return Ok(exit::NO);
        }
    };
    let now = SystemClock.now();
    let verification = keys
        .map(|keys| verify(ticket, &decoded, keys, purpose, now))
        .transpose()?;
    let verified = verification.as_ref().is_some_and(|v| v.verified);
    let purpose_matches = purpose_id(purpose) == decoded.purpose_id;
    let (data_keys, data_values) = data_view(&decoded.data, show_data);
    let fp = decoded.session_key.fingerprint().to_string();
    if json {
        let verification = verification.as_ref().map(|v| {
            json!({
                "verified": v.verified,
                "signature_valid": v.signature_valid,
                "key_id": v.signature_valid.then_some(decoded.key_id),
                "key_file_line": v.line,
                "reason": v.reason,
                "message": v.message,
            })
        });
        let mut claims = json!({
            "unverified": !verified,
            "fingerprint": fp,
            "session_key": decoded.session_key.to_hex(),
            "created_at": output::time(decoded.created_at),
            "issued_at": output::time(decoded.issued_at),
            "authenticated_at": decoded.auth_at.map(output::time),
            "idle_deadline": output::time(decoded.idle_deadline),
            "absolute_deadline": output::time(decoded.absolute_deadline),
            "expired": now >= decoded.idle_deadline.min(decoded.absolute_deadline),
            "user": decoded.user,
            "device": decoded.device,
            "data_bytes": decoded.data.len(),
            "data_keys": data_keys,
        });
        if let (Some(values), Some(obj)) = (data_values, claims.as_object_mut()) {
            obj.insert("data".into(), values);
        }
        output::json(&json!({
            "kind": "ticket",
            "well_formed": true,
            "header": {
                "version": decoded.version,
                "purpose_id": hex(&decoded.purpose_id),
                "purpose_matches": purpose_matches,
                "key_id": decoded.key_id,
                "flags": decoded.flags,
            },
            "claims": claims,
            "verification": verification,
        }));
    } else {
        let passed = |t: Timestamp| {
            if now >= t {
                format!("{} (passed)", output::time(t))
            } else {
                output::time(t)
            }
        };
        let text = |v: &Option<String>| v.as_deref().map_or_else(|| "-".to_owned(), safe);
        let mut pairs = vec![
            (
                "kind",
                format!("ticket (format version {})", decoded.version),
            ),
            (
                "claims",
                if verified {
                    "verified".to_owned()
                } else {
                    "UNVERIFIED: decoded without checking the signature".to_owned()
                },
            ),
            ("key id", decoded.key_id.to_string()),
            (
                "purpose id",
                format!(
                    "{} ({} {:?})",
                    hex(&decoded.purpose_id),
                    if purpose_matches { "is" } else { "is not" },
                    safe(purpose)
                ),
            ),
            ("fingerprint", fp),
            ("session key", decoded.session_key.to_hex()),
            ("user", text(&decoded.user)),
            ("device", text(&decoded.device)),
            ("created", output::time(decoded.created_at)),
            ("issued", output::time(decoded.issued_at)),
            ("authenticated", output::opt_time(decoded.auth_at)),
            ("idle deadline", passed(decoded.idle_deadline)),
            ("absolute deadline", passed(decoded.absolute_deadline)),
            (
                "data",
                format!(
                    "{} bytes; keys: {}",
                    decoded.data.len(),
                    if data_keys.is_empty() {
                        "-".to_owned()
                    } else {
                        safe(&data_keys.join(", "))
                    }
                ),
            ),
        ];
        if let Some(values) = &data_values {
            pairs.push(("data values", safe(&values.to_string())));
        }
        pairs.push((
            "verification",
            verification.as_ref().map_or_else(
                || "not checked (give --key-file)".to_owned(),
                |v| match v.reason {
                    None => v.message.clone(),
                    Some(reason) => format!("FAILED ({reason}): {}", v.message),
                },
            ),
        ));
        output::fields(&pairs);
    }
    Ok(match &verification {
        Some(v) if !v.verified => exit::NO,
        _ => exit::OK,
    })
}
