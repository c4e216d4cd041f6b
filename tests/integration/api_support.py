"""Running the api service in-process for integration tests.

The app is wired exactly as ``python -m caesar_api`` wires it (same runtime, indexes,
outbox and projection consumer from :mod:`caesar_api.bootstrap`), against the real
broker vhost and database prefix of the test, and served by aiohttp's test server.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient, TestServer
from astropy.io import fits
from astropy.wcs import WCS

from caesar_api.bootstrap import build, create_runtime
from caesar_api.entrypoints.http import create_app
from caesar_api.settings import ApiSettings
from caesar_common.runtime import ServiceRuntime, add_operational_routes
from caesar_common.store import Document

V1 = "/caesar/api/v1.0"


@dataclass
class RunningApi:
    client: TestClient[Any, Any]
    runtime: ServiceRuntime[ApiSettings]
    settings: ApiSettings

    def files_docs(self) -> Awaitable[list[Document]]:
        return self.runtime.collection("files").find({}).to_list()

    def jobs_docs(self) -> Awaitable[list[Document]]:
        return self.runtime.collection("jobs").find({}).to_list()

    def stored_paths(self) -> list[Path]:
        """Every file under the data root (uploads and any leftover temporaries)."""
        root = self.settings.data_root
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def api_settings(
    tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str, **overrides: Any
) -> ApiSettings:
    values: dict[str, Any] = {
        "amqp_url": amqp_url,
        "mongo_url": mongo_url,
        "mongo_db_prefix": db_prefix,
        "data_root": tmp_path / "data",
        "jobs_root": tmp_path / "jobs",
        "outbox_sweep_interval_s": 0.5,
        "log_json": False,
    }
    values.update(overrides)
    return ApiSettings(**values)


@asynccontextmanager
async def running_api(settings: ApiSettings) -> AsyncIterator[RunningApi]:
    runtime = create_runtime(settings)
    app = create_app(settings)
    add_operational_routes(app, runtime)
    await runtime.connect()
    await build(runtime)
    runtime.ready = True
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield RunningApi(client, runtime, settings)
    finally:
        await client.close()
        await runtime.shutdown(grace_s=5)


def radio_fits(size: int = 64) -> bytes:
    """A small valid continuum map: float32, SIN projection, restoring beam."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [266.4, -28.9]
    wcs.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    wcs.wcs.cdelt = [-0.001, 0.001]
    header = wcs.to_header()
    header["BMAJ"] = 0.002
    header["BMIN"] = 0.0015
    header["BPA"] = 30.0
    header["BUNIT"] = "JY/BEAM"
    data = np.random.default_rng(7).normal(0, 1e-3, (size, size)).astype(np.float32)
    buffer = io.BytesIO()
    fits.PrimaryHDU(data, header=header).writeto(buffer)
    return buffer.getvalue()
