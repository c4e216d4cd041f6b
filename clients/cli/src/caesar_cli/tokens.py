"""The cached login: tokens on disk, readable by their owner only.

The cache holds a refresh token, which is as good as a password for its lifetime, so the
file is created with mode 0600 inside a 0700 directory before any byte is written (never
chmod-ed afterwards: there would be a window where another user could open it), and
replaced atomically so a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

EXPIRY_SKEW_S = 30.0
"""A token this close to its expiry counts as expired: it could expire in flight."""


@dataclass(frozen=True)
class TokenSet:
    """What ``login`` obtained, and where to refresh it."""

    access_token: str
    expires_at: float
    refresh_token: str | None
    refresh_expires_at: float | None
    token_endpoint: str
    client_id: str

    def access_valid(self, now: float) -> bool:
        return now < self.expires_at - EXPIRY_SKEW_S

    def refreshable(self, now: float) -> bool:
        if not self.refresh_token:
            return False
        return self.refresh_expires_at is None or now < self.refresh_expires_at - EXPIRY_SKEW_S


def token_set_from_grant(
    body: Mapping[str, Any], now: float, token_endpoint: str, client_id: str
) -> TokenSet:
    """The :class:`TokenSet` of an OAuth 2.0 token answer received at ``now``.

    ``refresh_expires_in`` is Keycloak's; 0 there means an offline token without expiry.
    """
    refresh_in = body.get("refresh_expires_in")
    refresh_at = now + float(refresh_in) if refresh_in else None
    return TokenSet(
        access_token=str(body["access_token"]),
        expires_at=now + float(body.get("expires_in", 300)),
        refresh_token=body.get("refresh_token"),
        refresh_expires_at=refresh_at,
        token_endpoint=token_endpoint,
        client_id=client_id,
    )


def cache_path(env: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/caesar/token.json``, else ``~/.config/caesar/token.json``."""
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "caesar" / "token.json"


def save(path: Path, tokens: TokenSet) -> None:
    """Write the cache: directory 0700, file 0600 from its creation, replaced atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)  # an existing directory may have been made wider
    fd, tmp = tempfile.mkstemp(prefix=".token-", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(tokens), out)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load(path: Path) -> TokenSet | None:
    """The cached tokens, or ``None`` when there are none or the file is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return TokenSet(**data)
    except (OSError, ValueError, TypeError):
        return None


def remove(path: Path) -> bool:
    """Forget the login; whether there was one."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
