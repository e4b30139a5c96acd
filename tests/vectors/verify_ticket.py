#!/usr/bin/env python3
"""An independent verifier for latchkey tickets, format version 1.

Written from docs/TICKET_FORMAT.md with the Python standard library only
(hmac, hashlib, base64, struct), to prove the format can be verified outside
Rust. Run with a vectors file:

    python3 tests/vectors/verify_ticket.py tests/vectors/tickets.json

It accepts every valid vector with exactly its claims, re-encodes the claims
to exactly its ticket, and refuses every invalid vector for its stated reason.
Exit status 0 when all hold, 1 otherwise.

Use `verify(ticket, purpose, keys, now)` from your own code: it returns the
claims as a dict or raises `Rejected` with a reason code.
"""

import base64
import hashlib
import hmac
import json
import re
import struct
import sys

PREFIX = "lk1."
VERSION = 1
MAX_TICKET_LEN = 4096
LABEL = b"latchkey/v1/ticket\x00"
PURPOSE_ID_LABEL = b"latchkey/v1/ticket-purpose\x00"
HEADER = struct.Struct(">B4sIBQQQQQ32sHHH")  # 88 bytes
TAG_LEN = 32
FLAG_AUTH, FLAG_USER, FLAG_DEVICE = 1, 2, 4
B64URL = re.compile(r"\A[A-Za-z0-9_-]*\Z")

assert HEADER.size == 88


class Rejected(Exception):
    """A ticket was refused; `reason` matches latchkey's Error::reason()."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def purpose_id(purpose):
    return hashlib.sha256(PURPOSE_ID_LABEL + purpose.encode()).digest()[:4]


def mac_input(purpose, payload):
    p = purpose.encode()
    if not 1 <= len(p) <= 255:
        raise ValueError("purpose must be 1 to 255 bytes")
    prefix = LABEL + bytes([len(p)]) + p
    prefix += b"\x00" * (-len(prefix) % 64)  # zero-padded to whole 64-byte blocks
    return prefix + payload


def b64url_decode_strict(text):
    """Unpadded base64url with exactly one spelling per byte string."""
    if not B64URL.match(text) or len(text) % 4 == 1:
        raise Rejected("malformed", "not base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # Non-zero trailing bits would give a second spelling: refuse them by
    # requiring the canonical re-encoding to be the input.
    if base64.urlsafe_b64encode(raw).decode().rstrip("=") != text:
        raise Rejected("malformed", "non-canonical base64url")
    return raw


def b64url_encode(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def encode(claims, purpose, key_id, key):
    """Builds the ticket for `claims` (a dict as in the vectors file)."""
    user = claims["user"]
    device = claims["device"]
    auth_at = claims["auth_at"]
    u = (user or "").encode()
    d = (device or "").encode()
    data = claims["data"].encode()
    flags = (
        (FLAG_AUTH if auth_at is not None else 0)
        | (FLAG_USER if user is not None else 0)
        | (FLAG_DEVICE if device is not None else 0)
    )
    payload = (
        HEADER.pack(
            VERSION,
            purpose_id(purpose),
            key_id,
            flags,
            claims["created_at"],
            claims["issued_at"],
            auth_at or 0,
            claims["idle_deadline"],
            claims["absolute_deadline"],
            bytes.fromhex(claims["session_key"]),
            len(u),
            len(d),
            len(data),
        )
        + u
        + d
        + data
    )
    tag = hmac.new(key, mac_input(purpose, payload), hashlib.sha256).digest()
    return PREFIX + b64url_encode(payload + tag)


def verify(ticket, purpose, keys, now):
    """Verifies `ticket` for `purpose` with `keys` ({key_id: bytes}) at `now`
    (Unix milliseconds). Returns the claims; raises Rejected."""
    # 1. Length before anything else.
    if len(ticket) > MAX_TICKET_LEN:
        raise Rejected("malformed", "too long")
    # 2. Prefix and strict base64url.
    if not ticket.startswith(PREFIX):
        raise Rejected("malformed", "wrong prefix")
    raw = b64url_decode_strict(ticket[len(PREFIX):])
    if len(raw) < HEADER.size + TAG_LEN:
        raise Rejected("malformed", "too short")
    # 3. Structure, before any MAC.
    (version, pid, key_id, flags, created, issued, auth, idle, absolute, sid,
     user_len, device_len, data_len) = HEADER.unpack_from(raw)
    if version != VERSION:
        raise Rejected("malformed", f"version {version}")
    if (flags & ~(FLAG_AUTH | FLAG_USER | FLAG_DEVICE)
            or (not flags & FLAG_AUTH and auth != 0)
            or (not flags & FLAG_USER and user_len != 0)
            or (not flags & FLAG_DEVICE and device_len != 0)):
        raise Rejected("malformed", "flags")
    body_len = HEADER.size + user_len + device_len + data_len
    if body_len + TAG_LEN != len(raw):
        raise Rejected("malformed", "lengths")
    try:
        at = HEADER.size
        user = raw[at:at + user_len].decode("utf-8")
        at += user_len
        device = raw[at:at + device_len].decode("utf-8")
        at += device_len
        data = raw[at:at + data_len].decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("malformed", "not UTF-8")
    # 4. Purpose and key id (diagnostics; the MAC is the guard).
    if pid != purpose_id(purpose):
        raise Rejected("wrong_purpose")
    if key_id not in keys:
        raise Rejected("unknown_key", str(key_id))
    # 5. The MAC, compared in constant time.
    payload, tag = raw[:body_len], raw[body_len:]
    expected = hmac.new(keys[key_id], mac_input(purpose, payload), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, tag):
        raise Rejected("bad_signature")
    # 6. Deadlines.
    if now >= absolute:
        raise Rejected("absolute_expired")
    if now >= idle:
        raise Rejected("idle_expired")
    return {
        "created_at": created,
        "issued_at": issued,
        "auth_at": auth if flags & FLAG_AUTH else None,
        "idle_deadline": idle,
        "absolute_deadline": absolute,
        "session_key": sid.hex(),
        "user": user if flags & FLAG_USER else None,
        "device": device if flags & FLAG_DEVICE else None,
        "data": data,
        "key_id": key_id,
    }


def keys_of(vector):
    return {int(k): bytes.fromhex(v) for k, v in vector["keys"].items()}


def main(path):
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)
    failures = []
    for v in vectors["valid"]:
        keys = keys_of(v)
        try:
            claims = verify(v["ticket"], v["purpose"], keys, v["now"])
        except Rejected as e:
            failures.append(f"valid vector {v['name']!r} refused: {e}")
            continue
        if claims.pop("key_id") != v["key_id"]:
            failures.append(f"valid vector {v['name']!r}: wrong key id")
        if claims != v["claims"]:
            failures.append(f"valid vector {v['name']!r}: claims {claims} != {v['claims']}")
        again = encode(v["claims"], v["purpose"], v["key_id"], keys[v["key_id"]])
        if again != v["ticket"]:
            failures.append(f"valid vector {v['name']!r}: re-encodes to {again}")
    for v in vectors["invalid"]:
        try:
            verify(v["ticket"], v["purpose"], keys_of(v), v["now"])
            failures.append(f"invalid vector {v['name']!r} accepted")
        except Rejected as e:
            if e.reason != v["error"]:
                failures.append(f"invalid vector {v['name']!r}: {e.reason}, expected {v['error']}")
    for f in failures:
        print("FAIL", f)
    print(f"{len(vectors['valid'])} valid and {len(vectors['invalid'])} invalid vectors checked, "
          f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
