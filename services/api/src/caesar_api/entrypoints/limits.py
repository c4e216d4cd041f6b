"""What a slow or greedy client may hold: header and body time, connections.

aiohttp itself bounds only the idle time of a connection (its keep-alive timeout, which
also runs from the moment a connection opens until a request's headers are complete):
:func:`server_options` sets it to ``http_header_timeout_s``, so a client that never
finishes its headers (slowloris) is disconnected. Bodies are read by the routes, which
bound each read with :class:`BodyPace` (408 and nothing kept). Connections are counted
here, by the middleware :func:`connection_limit`: the server loop that accepts them
belongs to the shared runtime, so a connection beyond the limit is answered 503 and
closed on its first request rather than refused at accept; one that never sends a
request is closed by the header timeout.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from caesar_api.domain.errors import ApiError
from caesar_api.settings import ApiSettings

T = TypeVar("T")
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
CONNECTIONS_RETRY_AFTER_S = 1


def server_options(settings: ApiSettings) -> dict[str, Any]:
    """The aiohttp request handler's arguments (``web.Application(handler_args=...)``)."""
    return {"keepalive_timeout": settings.http_header_timeout_s}


def body_timed_out(seconds: float) -> ApiError:
    return ApiError(408, f"Request body timeout: no data received for {seconds:g} s")


async def read_within(seconds: float, read: Awaitable[T]) -> T:
    """A small body (JSON, form) read whole within ``seconds``, else 408."""
    try:
        async with asyncio.timeout(seconds):
            return await read
    except TimeoutError:
        raise body_timed_out(seconds) from None


class BodyPace:
    """The pace a streamed body must keep: no read waits longer than ``idle_s``, and
    after the first ``idle_s`` the body must average at least ``min_bytes_per_s``.

    The idle bound alone lets a client that sends a byte a minute hold a connection for
    ever; the average rate bounds that too, with room for a slow start.
    """

    def __init__(
        self, idle_s: float, min_bytes_per_s: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.idle_s = idle_s
        self.min_bytes_per_s = min_bytes_per_s
        self._clock = clock
        self._started = clock()
        self.received = 0

    @asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        """Bound one read of the body by ``idle_s`` (408 when it takes longer)."""
        try:
            async with asyncio.timeout(self.idle_s):
                yield
        except TimeoutError:
            raise body_timed_out(self.idle_s) from None

    def add(self, size: int) -> None:
        """Count ``size`` more bytes of the body; 408 if the body is now below the minimum rate."""
        self.received += size
        if not self.min_bytes_per_s:
            return
        elapsed = self._clock() - self._started
        if elapsed <= self.idle_s:
            return
        if self.received < self.min_bytes_per_s * (elapsed - self.idle_s):
            rate = int(self.received / elapsed)
            raise ApiError(
                408,
                f"Request body too slow: {rate} bytes/s on average, the minimum is "
                f"{self.min_bytes_per_s} bytes/s",
                details={"bytes_per_s": rate, "min_bytes_per_s": self.min_bytes_per_s},
            )


class ConnectionCount:
    """The connections that have sent a request and are still open (weakly held)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, transport: asyncio.BaseTransport | None) -> bool:
        """Whether a request on ``transport`` may be served; counts a new connection."""
        if transport is None or transport in self._open:
            return True
        for known in list(self._open):
            if known.is_closing():
                self._open.discard(known)
        if len(self._open) >= self.limit:
            return False
        self._open.add(transport)
        return True


def connection_limit(count: ConnectionCount) -> Middleware:
    """503 (JSON, ``Retry-After``) and close, for a request on a connection beyond the limit."""

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in UNLIMITED_PATHS or count.admit(request.transport):
            return await handler(request)
        response = web.json_response(
            {
                "status": f"Too many connections: the limit is {count.limit}; retry shortly",
                "limit_connections": count.limit,
            },
            status=503,
            headers={"Retry-After": str(CONNECTIONS_RETRY_AFTER_S)},
        )
        response.force_close()
        return response

    return limit
