"""The bearer token of each request: from CAESAR_TOKEN, else the cached login, refreshed.

Asked per request rather than once per command, because a ``wait`` can outlive an access
token (Keycloak's last 5 minutes by default): a reconnect after that gets a fresh one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from caesar_cli.codes import ExitCode
from caesar_cli.errors import CliError
from caesar_cli.oidc import refresh_grant
from caesar_cli.tokens import TokenSet, load, save


class TokenSource:
    """Gives the current access token, refreshing and re-caching it when it expires."""

    def __init__(
        self,
        env_token: str | None,
        cache: Path,
        http: httpx.Client,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._env_token = env_token or None
        self._cache = cache
        self._http = http
        self._clock = clock
        self._tokens: TokenSet | None = None
        self._loaded = False

    def get(self) -> str | None:
        """The token to send, or ``None`` (not logged in: fine where auth is off)."""
        if self._env_token:
            return self._env_token
        if not self._loaded:
            self._tokens = load(self._cache)
            self._loaded = True
        tokens = self._tokens
        if tokens is None:
            return None
        now = self._clock()
        if tokens.access_valid(now):
            return tokens.access_token
        if not tokens.refreshable(now):
            raise CliError("Your session has expired; run `caesar login` again.", ExitCode.AUTH)
        self._tokens = refresh_grant(self._http, tokens, now)
        save(self._cache, self._tokens)
        return self._tokens.access_token
