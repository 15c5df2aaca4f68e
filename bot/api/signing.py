"""The integration API's request signature (docs/security.md).

    X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<METHOD>.<path>." + raw body>

The path is the one sent, query string included. Signing the time, method and path as well as
the body makes each header good for one request only: a captured header cannot call another
route or coupon code, nor be sent again once its 300 s are over, and within them the API accepts
each signature once (`bot/seen_once.py`). WEBHOOK_SECRET may hold several comma-separated keys:
a signature by any of them counts, so a key is rotated by adding the new one, moving the clients
to it, then removing the old one. Clients sign with the first.

The body-only form of earlier versions, `sha256=<hex HMAC of the raw body>`, is one fixed value
per body forever; it is accepted only where the caller says a replay is harmless (stock events,
idempotent by `event_id`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

HEADER = "X-Signature"
TOLERANCE_S = 300
LEGACY_PREFIX = "sha256="
_HEX_LEN = 64
_MAX_TIMESTAMP_DIGITS = 12


def keys_of(secret: str | bytes) -> list[bytes]:
    """The keys of a WEBHOOK_SECRET value, in order: comma-separated, blanks ignored."""
    text = secret.decode() if isinstance(secret, bytes) else secret
    return [key.strip().encode() for key in text.split(",") if key.strip()]


def _digest(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def _signed_payload(timestamp: int, method: str, path: str, body: bytes) -> bytes:
    return f"{timestamp}.{method.upper()}.{path}.".encode() + body


def signed_headers(
    secret: str | bytes, method: str, path: str, body: bytes = b"", *, now: float | None = None
) -> dict[str, str]:
    """The headers a client sends to call `METHOD path` with `body` (what tests, benchmarks and
    the sandbox sign with). `path` is the path with its query string, as sent; `secret` may be a
    whole WEBHOOK_SECRET value, whose first key signs."""
    timestamp = int(time.time() if now is None else now)
    key = keys_of(secret)[0]
    return {HEADER: f"t={timestamp},v1={_digest(key, _signed_payload(timestamp, method, path, body))}"}


def legacy_signature(secret: str | bytes, body: bytes) -> str:
    """The body-only header value of earlier versions (accepted on stock events alone)."""
    return LEGACY_PREFIX + _digest(keys_of(secret)[0], body)


@dataclass(frozen=True, slots=True)
class Signed:
    """A request whose signature holds. `once_key` is what must not be accepted again (None for
    the body-only form, where the route makes a replay harmless) and `keep_until` the Unix time
    after which its timestamp is refused anyway."""

    once_key: str | None
    keep_until: float


def verify(
    keys: list[bytes], method: str, path: str, body: bytes, header: str | None,
    *, now: float | None = None, legacy_ok: bool = False,
) -> Signed | None:
    """The request's signature if it holds for one of `keys`, else None. Replays are the
    caller's to refuse, with `Signed.once_key`."""
    if not header or not keys:
        return None
    now = time.time() if now is None else now
    if header.strip().lower().startswith(LEGACY_PREFIX):
        if not legacy_ok:
            return None
        given = header.strip()[len(LEGACY_PREFIX):].strip().lower()
        if any(_same(_digest(key, body), given) for key in keys):
            return Signed(once_key=None, keep_until=now)
        return None
    timestamp, candidates = _parse(header)
    if timestamp is None or not candidates or abs(now - timestamp) > TOLERANCE_S:
        return None
    payload = _signed_payload(timestamp, method, path, body)
    for key in keys:
        expected = _digest(key, payload)
        for given in candidates:
            if _same(expected, given):
                return Signed(once_key=expected, keep_until=timestamp + TOLERANCE_S + 1)
    return None


def _parse(header: str) -> tuple[int | None, list[str]]:
    """`t=…,v1=…[,v1=…]`: the timestamp and every v1 value (a sender rotating keys may send one
    per key). Unknown fields are ignored, as Stripe's scheme does for future versions."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.partition("=")
        name, value = name.strip().lower(), value.strip().lower()
        if not sep:
            continue
        if name == "t":
            if not value.isascii() or not value.isdigit() or len(value) > _MAX_TIMESTAMP_DIGITS or timestamp is not None:
                return None, []
            timestamp = int(value)
        elif name == "v1" and len(value) == _HEX_LEN:
            candidates.append(value)
    return timestamp, candidates


def _same(expected: str, given: str) -> bool:
    # Bytes, not str: compare_digest refuses non-ASCII str with a TypeError (a 500).
    return hmac.compare_digest(expected.encode(), given.encode("ascii", "replace"))
