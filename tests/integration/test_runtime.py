"""Service start-up and readiness: ``ServiceRuntime`` and the operational HTTP routes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pymongo import ASCENDING, IndexModel

from caesar_common.runtime import ServiceRuntime, add_operational_routes
from caesar_common.settings import ServiceSettings
from caesar_common.store import mongo_client
from tests.integration.service_support import eventually

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLOSED_AMQP = "amqp://guest:guest@127.0.0.1:1/"
INDEXES = {"things": [IndexModel([("owner", ASCENDING)], name="owner")]}


def settings_for(amqp_url: str, mongo_url: str, db_prefix: str) -> ServiceSettings:
    return ServiceSettings(
        amqp_url=amqp_url,
        mongo_url=mongo_url,
        mongo_db_prefix=db_prefix,
        outbox_sweep_interval_s=0.2,
    )


async def client_for(runtime: ServiceRuntime[ServiceSettings]) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    add_operational_routes(app, runtime)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_ready_only_after_connect_and_the_ready_flag(
    amqp_url: str, mongo_url: str, db_prefix: str
) -> None:
    runtime = ServiceRuntime(
        "probe",
        settings_for(amqp_url, mongo_url, db_prefix),
        indexes=INDEXES,
        outbox_collections=["jobs"],
    )
    assert runtime.db.name == f"{db_prefix}_probe"
    client = await client_for(runtime)
    try:
        health = await client.get("/healthz")
        assert health.status == 200
        assert await health.json() == {"status": "ok"}

        assert not await runtime.is_ready()
        before = await client.get("/readyz")
        assert before.status == 503
        assert await before.json() == {"status": "not ready", "broker": False, "database": True}

        await runtime.connect()
        assert runtime.bus.is_connected
        assert not await runtime.is_ready()  # build() has not finished yet
        connected = await client.get("/readyz")
        assert connected.status == 503
        assert (await connected.json())["broker"] is True

        runtime.ready = True
        assert await runtime.is_ready()
        after = await client.get("/readyz")
        assert after.status == 200
        assert await after.json() == {"status": "ready", "broker": True, "database": True}

        metrics = await client.get("/metrics")
        assert metrics.status == 200
        assert metrics.content_type == "text/plain"
        assert "caesar_events_published_total" in await metrics.text()

        # connect() created the declared indexes plus the outbox flag index.
        things = await runtime.collection("things").index_information()
        jobs = await runtime.collection("jobs").index_information()
        assert "owner" in things
        assert "outbox_pending" in jobs
        assert jobs["outbox_pending"].get("sparse") is True

        # A broker connection lost later turns readiness red again; health stays green.
        await runtime.bus.close()
        lost = await client.get("/readyz")
        assert lost.status == 503
        assert (await lost.json())["broker"] is False
        assert (await client.get("/healthz")).status == 200
    finally:
        await client.close()
        await runtime.shutdown(grace_s=2)  # also stops the outbox sweeper
    assert not runtime.ready
    assert not await runtime.is_ready()


async def test_unreachable_broker_is_not_ready_but_healthy(mongo_url: str, db_prefix: str) -> None:
    runtime = ServiceRuntime("probe", settings_for(CLOSED_AMQP, mongo_url, db_prefix), indexes=INDEXES)
    client = await client_for(runtime)
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises((ConnectionError, OSError)):
            await runtime.bus.connect(wait_s=1)
        assert loop.time() - t0 < 15
        assert not runtime.bus.is_connected

        runtime.ready = True  # even a service that thinks it is built is not ready
        assert not await runtime.is_ready()
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert await ready.json() == {"status": "not ready", "broker": False, "database": True}
        health = await client.get("/healthz")
        assert health.status == 200
    finally:
        await client.close()
        await runtime.mongo.close()


async def test_unreachable_database_is_not_ready(db_prefix: str) -> None:
    settings = ServiceSettings(
        amqp_url=CLOSED_AMQP, mongo_url="mongodb://127.0.0.1:1/", mongo_db_prefix=db_prefix
    )
    runtime = ServiceRuntime("probe", settings, indexes={})
    # A short server selection timeout, so that each failed ping takes 0.3 s, not 5 s.
    await runtime.mongo.close()
    runtime.mongo = mongo_client(settings.mongo_url, serverSelectionTimeoutMS=300)
    runtime.db = runtime.mongo[settings.database_name("probe")]
    client = await client_for(runtime)
    try:
        runtime.ready = True
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert await ready.json() == {"status": "not ready", "broker": False, "database": False}
        assert (await client.get("/healthz")).status == 200
        with pytest.raises(RuntimeError, match="database not reachable"):
            await runtime.wait_for_database(wait_s=0.5)
    finally:
        await client.close()
        await runtime.mongo.close()


# --------------------------------------------------------------------- run_service, for real

SERVICE = textwrap.dedent(
    """
    import asyncio, sys
    from caesar_common.runtime import run_service
    from caesar_common.settings import ServiceSettings

    amqp_url, mongo_url, prefix, port = sys.argv[1:5]

    async def build(runtime):
        # Declaring queues, starting consumers ... until the test says "go" (on stdin).
        await asyncio.to_thread(sys.stdin.readline)
        print("built", flush=True)

    async def on_shutdown(runtime):
        print("on_shutdown", flush=True)

    run_service(
        "probe",
        ServiceSettings(
            amqp_url=amqp_url, mongo_url=mongo_url, mongo_db_prefix=prefix,
            http_port=int(port), log_json=False,
        ),
        build,
        indexes={},
        on_shutdown=on_shutdown,
    )
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_run_service_serves_health_first_then_ready_then_stops_on_sigterm(
    amqp_url: str, mongo_url: str, db_prefix: str
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVICE, amqp_url, mongo_url, db_prefix, str(port)],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    seen: list[tuple[int, int]] = []
    assert proc.stdin is not None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:

            async def answered() -> bool:
                assert proc.poll() is None, proc.communicate()[0]
                try:
                    health = await http.get(f"{base}/healthz")
                    ready = await http.get(f"{base}/readyz")
                except aiohttp.ClientConnectionError:
                    return False
                seen.append((health.status, ready.status))
                return True

            await eventually(answered, timeout_s=30, what="the service to answer")
            # Alive (and answering) while build() is still running: not ready.
            assert seen == [(200, 503)]
            proc.stdin.write("go\n")
            proc.stdin.flush()

            async def became_ready() -> bool:
                return await answered() and seen[-1][1] == 200

            await eventually(became_ready, timeout_s=30, what="the service to be ready")
        # Ready in the end, alive all along.
        assert seen[-1] == (200, 200)
        assert {h for h, _ in seen} == {200}

        proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(proc.communicate, timeout=30)
        assert proc.returncode == 0, output
        lines = output.splitlines()
        assert "built" in lines
        assert lines.index("built") < lines.index("on_shutdown")
        assert "stopped" in output
        assert "Traceback" not in output, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
