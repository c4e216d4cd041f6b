"""The accounting service's internal HTTP API, as the api's usage routes need it.

The api never reads accounting's database: usage figures are accounting's to compute
(docs/architecture.md, "Usage figures over HTTP"). Every request waits at most
``timeout_s`` for the whole answer; anything but a JSON object with 200 in that time
(connection refused, a slow or restarting accounting, its 503 while not ready) raises
:class:`AccountingUnavailable`, which the routes answer with 503 and Retry-After, so a
client never waits on a stuck back-end.

One :class:`aiohttp.ClientSession` per api process (its connection pool is reused by
every request). It is made on first use, inside the running event loop, and closed with
the HTTP server (:meth:`AccountingClient.aclose`, an ``on_cleanup`` of the app).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from yarl import URL

from caesar_common.logging import get_logger
from caesar_common.telemetry import current_trace_carrier
from caesar_common.usage_query import UsageQuery

log = get_logger(__name__)


class AccountingUnavailable(Exception):
    """Accounting gave no usable answer in time; the reason is for the log only."""


class AccountingClient:
    """Reads usage reports from accounting (``GET /usage``, ``/usage/all``, ``/usage/report``)."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base_url = URL(base_url.rstrip("/") + "/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            raise AccountingUnavailable("the api is shutting down")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            return await self._fetch(path, params)
        except (aiohttp.ClientError, TimeoutError, ValueError, AccountingUnavailable) as exc:
            # ValueError: a body that is not JSON (a proxy's error page, say).
            log.warning("accounting unavailable", path=path, error=repr(exc))
            raise AccountingUnavailable(repr(exc)) from exc

    async def _fetch(self, path: str, params: dict[str, str] | None) -> dict[str, Any]:
        url = self.base_url.join(URL(path))
        # The trace context goes along, so the request and its report share one trace.
        async with self._client().get(url, params=params, headers=current_trace_carrier()) as resp:
            if resp.status != 200:
                raise AccountingUnavailable(f"accounting answered {resp.status}")
            body = await resp.json()
        if not isinstance(body, dict):
            raise AccountingUnavailable("accounting answered something that is not a report")
        return body

    async def owner_usage(self, owner: str) -> dict[str, Any]:
        """One user's totals (with per-app and per-day breakdowns)."""
        return await self._get("usage", {"owner": owner})

    async def global_usage(self) -> dict[str, Any]:
        """Everyone's totals and the number of users."""
        return await self._get("usage/all")

    async def usage_report(self, query: UsageQuery) -> dict[str, Any]:
        """The report of ``query`` (date range, grouping, one user or everyone)."""
        return await self._get("usage/report", query.params(owner_key="owner"))

    async def aclose(self) -> None:
        """Close the connection pool; later calls raise :class:`AccountingUnavailable`."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
