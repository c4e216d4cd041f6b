"""Start-up, readiness and graceful shutdown shared by every service.

A service may start before the broker or the database: :class:`ServiceRuntime` serves
``/healthz`` at once, keeps ``/readyz`` red until both answer, and only then lets the
service declare its queues and consume. On SIGTERM it stops consuming, lets the message
in hand finish, flushes the outbox and exits.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any, Generic, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from caesar_common.bus import Bus
from caesar_common.logging import get_logger, setup_logging
from caesar_common.outbox import OUTBOX_INDEX, OutboxRelay
from caesar_common.settings import ServiceSettings
from caesar_common.store import Document, ensure_indexes, mongo_client, ping
from caesar_common.telemetry import setup_telemetry, shutdown_telemetry

log = get_logger(__name__)

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


class ServiceRuntime(Generic[SettingsT]):
    """The clients and lifecycle of one service process.

    Generic in the service's own settings class, so ``runtime.settings.<field>`` is typed
    in the service's bootstrap without casts.
    """

    def __init__(
        self,
        name: str,
        settings: SettingsT,
        *,
        indexes: Mapping[str, Sequence[IndexModel]],
        outbox_collections: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.settings = settings
        self.bus = Bus(settings.amqp_url, name)
        self.mongo = mongo_client(settings.mongo_url)
        self.db: AsyncDatabase[Document] = self.mongo[settings.database_name(name)]
        self._indexes = {
            coll: [*models, *([OUTBOX_INDEX] if coll in outbox_collections else [])]
            for coll, models in indexes.items()
        }
        for coll in outbox_collections:
            self._indexes.setdefault(coll, [OUTBOX_INDEX])
        self.relay = OutboxRelay(
            self.bus,
            [self.db[c] for c in outbox_collections],
            sweep_interval_s=settings.outbox_sweep_interval_s,
            duplicate_publish=settings.duplicate_publish,
        )
        self.ready = False
        self.failure: BaseException | None = None
        self._stop = asyncio.Event()
        self._background: list[asyncio.Task[Any]] = []

    def collection(self, name: str) -> AsyncCollection[Document]:
        return self.db[name]

    async def wait_for_database(self, *, wait_s: float = 300.0) -> None:
        delay = 0.5
        deadline = asyncio.get_running_loop().time() + wait_s
        while not await ping(self.db):
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("database not reachable")
            log.warning("database not reachable, retrying", retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def connect(self) -> None:
        """Wait for broker and database, create indexes, start the outbox relay."""
        await self.wait_for_database()
        await ensure_indexes(self.db, self._indexes)
        await self.bus.connect()
        self.relay.start()

    def spawn(self, coro: Awaitable[Any], name: str, *, essential: bool = True) -> asyncio.Task[Any]:
        """Run a background task that is cancelled at shutdown, and watch it.

        An essential task (a heartbeat, a watchdog, a start-up resume) that ends with an
        exception stops the service with a non-zero exit: a supervisor restarts it, rather
        than a process that looks alive but silently no longer does its job.
        """
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._background.append(task)
        task.add_done_callback(lambda t: self._background_done(t, essential))
        return task

    def _background_done(self, task: asyncio.Task[Any], essential: bool) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if essential:
            log.error("essential background task failed; stopping", task=task.get_name(), error=repr(exc))
            self.fail(exc)
        else:
            log.warning("background task failed", task=task.get_name(), error=repr(exc))

    def fail(self, exc: BaseException) -> None:
        """Stop the service because something it cannot live without failed (exit 1)."""
        self.failure = exc
        self._stop.set()

    async def is_ready(self) -> bool:
        return self.ready and self.bus.is_connected and await ping(self.db)

    def request_stop(self) -> None:
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def shutdown(self, *, grace_s: float = 30.0) -> None:
        self.ready = False
        await self.bus.stop_consuming(grace_s=grace_s)
        await stop_tasks(self._background, grace_s)
        await self.relay.flush()
        await self.bus.close()
        await self.mongo.close()
        shutdown_telemetry()


async def stop_tasks(tasks: Sequence[asyncio.Task[Any]], grace_s: float, *, again_s: float = 0.5) -> None:
    """Cancel ``tasks`` and wait for them, at most ``grace_s``; log any still running.

    A cancel is repeated every ``again_s``: one that lands while a library catches it
    (or, on Python 3.11, while ``asyncio.wait_for`` returns its inner result) is lost,
    and a stop that waited for such a task would wait forever.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(again_s, left))
    for task in tasks:
        if task.done() and not task.cancelled():
            with suppress(Exception):
                task.result()  # retrieved, so asyncio does not report it as never retrieved
    if pending:
        log.error("background tasks did not stop", tasks=sorted(t.get_name() for t in pending))


RUNTIME_KEY: web.AppKey[ServiceRuntime[Any]] = web.AppKey("runtime")


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    broker = runtime.bus.is_connected
    database = await ping(runtime.db)
    ready = runtime.ready and broker and database
    body = {"status": "ready" if ready else "not ready", "broker": broker, "database": database}
    return web.json_response(body, status=200 if ready else 503)


async def _metrics(_: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest())
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    resp.charset = "utf-8"
    return resp


def add_operational_routes(app: web.Application, runtime: ServiceRuntime[Any]) -> None:
    """``/healthz`` (process alive), ``/readyz`` (broker and database reachable), ``/metrics``."""
    app[RUNTIME_KEY] = runtime
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)


def run_service(
    name: str,
    settings: SettingsT,
    build: Callable[[ServiceRuntime[SettingsT]], Awaitable[None]],
    *,
    indexes: Mapping[str, Sequence[IndexModel]],
    outbox_collections: Sequence[str] = (),
    app: web.Application | None = None,
    on_shutdown: Callable[[ServiceRuntime[SettingsT]], Awaitable[None]] | None = None,
) -> None:
    """Entry point of a service process: logs, traces, HTTP, connect, ``build``, wait, stop.

    ``build`` declares queues and starts consumers and loops once broker and database
    are reachable; the HTTP server (``app`` or a bare operational one) answers meanwhile.
    """
    setup_logging(name, settings.log_level, settings.log_json)
    setup_telemetry(name)

    async def main() -> int:
        runtime = ServiceRuntime(name, settings, indexes=indexes, outbox_collections=outbox_collections)
        web_app = app if app is not None else web.Application()
        add_operational_routes(web_app, runtime)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.request_stop)
        runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=settings.http_shutdown_grace_s)
        await runner.setup()
        site = web.TCPSite(runner, settings.http_host, settings.http_port)
        await site.start()
        log.info("listening", host=settings.http_host, port=settings.http_port)
        http_stopped = False
        try:
            connecting = asyncio.ensure_future(_start(runtime, build))
            stopping = asyncio.ensure_future(runtime.wait_stopped())
            done, _ = await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if connecting in done:
                connecting.result()
                await stopping
            else:
                connecting.cancel()
            log.info("stopping")
            runtime.ready = False
            # Orderly: first the HTTP server (no new requests; those in flight, such as an
            # upload, finish within the grace while the broker and database are still
            # there), then the service's own drain (a runner's jobs), then consumers, the
            # outbox flush and the clients (runtime.shutdown).
            await runner.cleanup()
            http_stopped = True
            if on_shutdown is not None:
                await on_shutdown(runtime)
            await runtime.shutdown()
        finally:
            if not http_stopped:
                await runner.cleanup()
        if runtime.failure is not None:
            log.error("stopped after a failure", error=repr(runtime.failure))
            return 1
        log.info("stopped")
        return 0

    code = asyncio.run(main())
    if code:
        raise SystemExit(code)


async def _start(
    runtime: ServiceRuntime[SettingsT], build: Callable[[ServiceRuntime[SettingsT]], Awaitable[None]]
) -> None:
    await runtime.connect()
    await build(runtime)
    runtime.ready = True
    log.info("ready")
