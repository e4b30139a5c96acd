//! `latchkey inspect`: a session token's shape, a ticket's contents and
//! signature.
//!
//! The input is a secret and is never printed, quoted in an error, or put
//! in JSON: only what is derived from it (its fingerprint, store key,
//! decoded claims) is shown.

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use latchkey::{
    Clock as _, Error, KeyRing, Policy, RESERVED_PREFIX, SessionId, SystemClock, TicketManager,
    Timestamp, TokenError, UnverifiedTicket,
};
use serde_json::{Value, json};

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
    decoded: &UnverifiedTicket,
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
    if !decoded.is_for_purpose(purpose) {
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
        .filter(|k| k.id == Some(decoded.key_id()))
        .chain(keys.iter().filter(|k| k.id.is_none()))
        .collect();
    if candidates.is_empty() {
        return Ok(fail(
            "unknown_key",
            format!(
                "the key file has no key with id {} (and no bare key to try)",
                decoded.key_id()
            ),
        ));
    }
    let policy = lenient_policy()?;
    for candidate in candidates {
        let ring = KeyRing::new(decoded.key_id(), candidate.key.clone());
        let manager = TicketManager::new(purpose, ring)
            .map_err(|e| Failure::Usage(format!("--purpose: {e}")))?
            .with_policy(policy.clone());
        // Loaded at its own issue instant: the library checks structure,
        // purpose, key and MAC; expiry is judged below against `now`.
        match manager.load_at(ticket, decoded.issued_at()) {
            Ok(_) | Err(Error::IdleExpired { .. } | Error::AbsoluteExpired { .. }) => {
                let expired = if now >= decoded.absolute_deadline() {
                    Some(("absolute_expired", "its absolute deadline has passed"))
                } else if now >= decoded.idle_deadline() {
                    Some(("idle_expired", "its idle deadline has passed"))
                } else {
                    None
                };
                let which = match candidate.id {
                    Some(id) => format!("key id {id}"),
                    None => format!("the bare key tried as key id {}", decoded.key_id()),
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
            decoded.key_id()
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
    let decoded = match UnverifiedTicket::parse(ticket) {
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
    let purpose_matches = decoded.is_for_purpose(purpose);
    let (data_keys, data_values) = data_view(decoded.data(), show_data);
    let fp = decoded.session_key().fingerprint().to_string();
    if json {
        let verification = verification.as_ref().map(|v| {
            json!({
                "verified": v.verified,
                "signature_valid": v.signature_valid,
                "key_id": v.signature_valid.then_some(decoded.key_id()),
                "key_file_line": v.line,
                "reason": v.reason,
                "message": v.message,
            })
        });
        let mut claims = json!({
            "unverified": !verified,
            "fingerprint": fp,
            "session_key": decoded.session_key().to_hex(),
            "created_at": output::time(decoded.created_at()),
            "issued_at": output::time(decoded.issued_at()),
            "authenticated_at": decoded.authenticated_at().map(output::time),
            "idle_deadline": output::time(decoded.idle_deadline()),
            "absolute_deadline": output::time(decoded.absolute_deadline()),
            "expired": now >= decoded.idle_deadline().min(decoded.absolute_deadline()),
            "user": decoded.user(),
            "device": decoded.device(),
            "data_bytes": decoded.data().len(),
            "data_keys": data_keys,
        });
        if let (Some(values), Some(obj)) = (data_values, claims.as_object_mut()) {
            obj.insert("data".into(), values);
        }
        output::json(&json!({
            "kind": "ticket",
            "well_formed": true,
            "header": {
                "version": decoded.version(),
                "purpose_id": hex(&decoded.purpose_id()),
                "purpose_matches": purpose_matches,
                "key_id": decoded.key_id(),
                // The header's flags byte, as the format defines it.
                "flags": u8::from(decoded.authenticated_at().is_some())
                    | u8::from(decoded.user().is_some()) << 1
                    | u8::from(decoded.device().is_some()) << 2,
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
        let text = |v: Option<&str>| v.map_or_else(|| "-".to_owned(), safe);
        let mut pairs = vec![
            (
                "kind",
                format!("ticket (format version {})", decoded.version()),
            ),
            (
                "claims",
                if verified {
                    "verified".to_owned()
                } else {
                    "UNVERIFIED: decoded without checking the signature".to_owned()
                },
            ),
            ("key id", decoded.key_id().to_string()),
            (
                "purpose id",
                format!(
                    "{} ({} {:?})",
                    hex(&decoded.purpose_id()),
                    if purpose_matches { "is" } else { "is not" },
                    safe(purpose)
                ),
            ),
            ("fingerprint", fp),
            ("session key", decoded.session_key().to_hex()),
            ("user", text(decoded.user())),
            ("device", text(decoded.device())),
            ("created", output::time(decoded.created_at())),
            ("issued", output::time(decoded.issued_at())),
            (
                "authenticated",
                output::opt_time(decoded.authenticated_at()),
            ),
            ("idle deadline", passed(decoded.idle_deadline())),
            ("absolute deadline", passed(decoded.absolute_deadline())),
            (
                "data",
                format!(
                    "{} bytes; keys: {}",
                    decoded.data().len(),
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
