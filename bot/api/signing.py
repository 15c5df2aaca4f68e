"""The integration API's request signature: `X-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.

The key is WEBHOOK_SECRET. The hex digest is compared in constant time; the header's prefix and
the digest's letter case are accepted as integrators commonly write them.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Signature"
PREFIX = "sha256="


def signature(secret: str | bytes, body: bytes) -> str:
    """The header value a client sends for `body`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def signed_headers(secret: str | bytes, method: str, path: str, body: bytes = b"") -> dict[str, str]:
    """The headers a client sends to call `METHOD path` with `body`: what tests, benchmarks and
    the sandbox sign with, so a change of the signature scheme changes them all at once.

    `path` is the path with its query string, as sent.
    """
    del method, path  # the body-only scheme; the scheme that also signs method and path replaces this
    return {HEADER: signature(secret, body)}


def verify(secret: str | bytes, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    scheme, sep, given = header.strip().partition("=")
    if not sep or scheme.strip().lower() != "sha256":
        return False
    given = given.strip().lower()
    if len(given) != 64:
        return False
    expected = signature(secret, body)[len(PREFIX) :]
    return hmac.compare_digest(expected.encode(), given.encode("ascii", "replace"))
