"""Webhook secrets and signatures (pure).

The body is signed together with the time it was sent, ``"<timestamp>.<body>"``, with
HMAC-SHA256 and the hook's secret: a receiver that checks the signature knows the api
sent these exact bytes, and one that also bounds the timestamp's age cannot be fooled
by a recorded delivery played back later.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a prefix, not a secret
SIGNATURE_PREFIX: Final = "sha256="


def new_secret() -> str:
    """A fresh hook secret: 256 random bits, URL-safe."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``X-Caesar-Signature``: ``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``."""
    message = str(int(timestamp)).encode() + b"." + body
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str, timestamp: str, body: bytes, header: str, *, now: float, tolerance_s: float = 300.0
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body), header)
