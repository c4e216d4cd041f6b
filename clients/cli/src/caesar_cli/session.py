"""What every command shares: the server, HTTP client, token source and consoles.

Built lazily from the root options, so ``caesar --help`` or a usage error never opens a
connection or reads the token cache.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from caesar_cli import __version__
from caesar_cli.api import Api
from caesar_cli.auth import TokenSource
from caesar_cli.tokens import cache_path

DEFAULT_URL = "http://localhost:8080"
TIMEOUT = httpx.Timeout(60.0, connect=10.0)


@dataclass
class Session:
    url: str
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    out: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True))
    client: httpx.Client | None = None
    _api: Api | None = None

    @property
    def token_cache(self) -> Path:
        return cache_path(self.env)

    @property
    def http(self) -> httpx.Client:
        if self.client is None:
            self.client = httpx.Client(
                timeout=TIMEOUT, headers={"User-Agent": f"caesar-cli/{__version__}"}, follow_redirects=False
            )
        return self.client

    @property
    def api(self) -> Api:
        if self._api is None:
            tokens = TokenSource(self.env.get("CAESAR_TOKEN"), self.token_cache, self.http)
            self._api = Api(self.url, self.http, tokens)
        return self._api

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def emit_json(self, data: Any) -> None:
        """``--json``: the data alone on stdout, nothing else."""
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
        sys.stdout.flush()
