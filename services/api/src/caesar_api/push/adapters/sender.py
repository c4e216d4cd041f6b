"""The HTTP side of webhooks: resolve, check, connect to what was checked, POST, bounded.

The SSRF guard lives in the *resolver* of the client's connector: aiohttp connects to the
addresses its resolver returns and to nothing else, so the addresses checked are the
ones connected to, and a name that answers differently a moment later (DNS rebinding)
is checked again on that later answer. A host written as an address never reaches a
resolver, so it is checked before the request. No redirect is followed (a 3xx is a
failed attempt), environment proxies are ignored, the whole request has a timeout and
at most a few KiB of the answer are read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Any, Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from caesar_api.push.domain.hooks import REFUSED, SendResult
from caesar_api.push.domain.url_policy import literal_address, refused_addresses

RESOLVE_TIMEOUT_S: Final = 5.0
RESPONSE_READ_BYTES: Final = 64 * 1024
ERROR_MAX: Final = 300


class AddressRefused(OSError):
    """The host resolves to an address webhooks may not reach (the SSRF guard)."""


class GuardedResolver(AbstractResolver):
    """Resolves with the system's resolver, then refuses the answer if any address is not allowed."""

    def __init__(self, *, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        addresses = [ipaddress.ip_address(a["host"]) for a in answers]
        reason = refused_addresses(addresses, allow_private=self._allow_private)
        if reason is not None:
            raise AddressRefused(reason)
        return answers

    async def close(self) -> None:
        await self._inner.close()


class WebhookSender:
    """POSTs webhook bodies through the guarded resolver; one client session per process."""

    def __init__(self, *, allow_private: bool, timeout_s: float) -> None:
        self._allow_private = allow_private
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def refusal(self, url: str) -> str | None:
        """Why the api would not call ``url`` now (registration check), or ``None``."""
        host = URL(url).host or ""
        literal = literal_address(host)
        if literal is not None:
            return refused_addresses([literal], allow_private=self._allow_private)
        resolver = GuardedResolver(allow_private=self._allow_private)
        try:
            await asyncio.wait_for(resolver.resolve(host, 0, socket.AF_UNSPEC), RESOLVE_TIMEOUT_S)
        except AddressRefused as exc:
            return str(exc)
        except (OSError, TimeoutError, UnicodeError):
            return f"the host {host} does not resolve"
        finally:
            await resolver.close()
        return None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(allow_private=self._allow_private),
                use_dns_cache=False,
                force_close=True,
                limit=64,
            )
            timeout = aiohttp.ClientTimeout(total=self._timeout_s, connect=min(self._timeout_s, 5.0))
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, trust_env=False, auto_decompress=False
            )
        return self._session

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        """One attempt; never raises for what the receiver or the network did."""
        started = time.monotonic()
        literal = literal_address(URL(url).host or "")
        if literal is not None:
            reason = refused_addresses([literal], allow_private=self._allow_private)
            if reason is not None:
                return SendResult(None, REFUSED + reason, 0)
        try:
            async with self._client().post(url, data=body, headers=headers, allow_redirects=False) as resp:
                await resp.content.read(RESPONSE_READ_BYTES)
                status: int | None = resp.status
                error = None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
        except aiohttp.ClientConnectorError as exc:
            status, error = None, _describe(exc.os_error if exc.os_error is not None else exc)
        except TimeoutError:
            status, error = None, f"no answer within {self._timeout_s:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            status, error = None, _describe(exc)
        return SendResult(status, error, int((time.monotonic() - started) * 1000))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _describe(exc: BaseException) -> str:
    prefix = REFUSED if isinstance(exc, AddressRefused) else ""
    text: Any = str(exc) or type(exc).__name__
    return (prefix + str(text))[:ERROR_MAX]
