"""Bounded work and per-user limits of uploads, against the real broker and database.

The memory bound is measured on the api as users run it (``python -m caesar_api``, its
own process): the peak resident set (``VmHWM``) the kernel records for that process.
The other limits run the api in-process and talk raw HTTP where a well-behaved client
library cannot misbehave on purpose (stalled headers and bodies, idle connections).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from astropy.io import fits

from caesar_testkit.devstack import Stack
from tests.compressed_fits import compressed_image, radio_keywords
from tests.conftest import isolated_stack
from tests.integration.api_support import V1, RunningApi, api_settings, radio_fits, running_api
from tests.integration.service_support import eventually

pytestmark = pytest.mark.integration

MB = 1000 * 1000
MIB = 1024 * 1024
# 17 KB on the wire, 1 GiB of pixels once decompressed (16384 x 16384 int32).
BOMB = compressed_image(16384, 16384, header=radio_keywords())


def form(content: bytes, filename: str = "map.fits") -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("file", content, filename=filename, content_type="application/octet-stream")
    return data


def small_compressed_map() -> bytes:
    data = np.random.default_rng(2).normal(0, 1e-3, (256, 256)).astype(np.float32)
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="RICE_1")]).writeto(buffer)
    return buffer.getvalue()


# --- memory of the api process ------------------------------------------------------------


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set so far (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def reset_peak_rss(pid: int) -> None:
    """Start the peak over from the current resident set (Linux: ``clear_refs`` 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[Stack]:
    with isolated_stack(tmp_path, ["api"], prefix_letter="m") as stack:
        yield stack
    log = tmp_path / "logs" / "api.log"
    assert "Traceback" not in log.read_text(errors="replace")


async def test_a_small_upload_that_expands_hugely_keeps_the_api_within_its_memory_bound(
    api_process: Stack,
) -> None:
    """The issue's attack: a few KB of tile-compressed FITS that decompress to 1 GiB.

    Before the bounded check the api's memory grew by the whole image (1 GB here, and
    4 s); now it decompresses a few tiles, so the growth stays under 150 MB.
    """
    pid = api_process.procs["api"].pid
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        # Warm up: the first compressed upload loads the code paths a compressed image needs.
        async with http.post(f"{api_process.v1}/upload", data=form(small_compressed_map())) as resp:
            assert resp.status == 200, await resp.text()
        reset_peak_rss(pid)
        before = peak_rss_bytes(pid)
        async with http.post(f"{api_process.v1}/upload", data=form(BOMB, "bomb.fits")) as resp:
            body = await resp.json()
            assert resp.status == 200, body
        growth = peak_rss_bytes(pid) - before
        assert growth < 150 * MB, f"the api's peak memory grew by {growth / MB:.0f} MB"

        # The sampled tiles are enough to know what the image is: constant, so no job.
        job = {"app": "sfind", "job_inputs": {}, "data_inputs": body["uuid"]}
        async with http.post(f"{api_process.v1}/job", json=job) as resp:
            assert resp.status == 400
            assert "constant" in (await resp.json())["status"]
    assert len(BOMB) < 32 * 1024


# --- the api in-process -------------------------------------------------------------------


ApiWith = Callable[..., AbstractAsyncContextManager[RunningApi]]


@pytest.fixture
def api_with(tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str) -> ApiWith:
    """The api in-process with the given settings (the limits under test)."""

    def start(**overrides: Any) -> AbstractAsyncContextManager[RunningApi]:
        return running_api(api_settings(tmp_path, amqp_url, mongo_url, db_prefix, **overrides))

    return start


async def assert_nothing_stored(api: RunningApi, *, records: int = 0) -> None:
    assert len(await api.files_docs()) == records
    assert len(api.stored_paths()) == records
    assert not [p for p in api.stored_paths() if p.name.startswith(".upload-")]


async def raw_connection(api: RunningApi) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    server = api.client.server
    return await asyncio.open_connection(server.host, server.port)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer: status, headers (lower-case names), body (by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: caesar\r\n\r\n".encode()


def upload_head(declared: int, boundary: str = "caesarboundary") -> tuple[bytes, bytes]:
    """The request head of a multipart upload of ``declared`` body bytes, and the part head."""
    part = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="slow.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    request = (
        f"POST {V1}/upload HTTP/1.1\r\nHost: caesar\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    return request, part


async def test_a_compressed_image_declaring_more_than_the_limit_is_413_naming_it(api_with: ApiWith) -> None:
    async with api_with(max_decompressed_bytes=MIB) as limited_api:
        bomb = compressed_image(1024, 1024)  # 4 MiB of int32 once decompressed
        resp = await limited_api.client.post(f"{V1}/upload", data=form(bomb, "big.fits"))
        assert resp.status == 413
        assert resp.content_type == "application/json"
        body = await resp.json()
        assert "the limit is 1048576 bytes" in body["status"]
        assert (body["decompressed_bytes"], body["limit_bytes"]) == (4 * MIB, MIB)
        await assert_nothing_stored(limited_api)


async def test_the_byte_quota_is_507_with_the_figures_and_a_delete_makes_room(api_with: ApiWith) -> None:
    async with api_with(user_quota_bytes=12_000) as limited_api:
        api = limited_api
        content = radio_fits(16)  # 5760 bytes
        ids = []
        for _ in range(2):
            resp = await api.client.post(f"{V1}/upload", data=form(content))
            assert resp.status == 200
            ids.append((await resp.json())["uuid"])
        resp = await api.client.post(f"{V1}/upload", data=form(content))
        assert resp.status == 507
        assert resp.content_type == "application/json"
        body = await resp.json()
        # Cut off as soon as it outgrew the 480 bytes left: its full size is not known.
        assert (body["used_bytes"], body["limit_bytes"]) == (11_520, 12_000)
        assert "Storage quota exceeded" in body["status"]
        await assert_nothing_stored(api, records=2)

        assert (await api.client.post(f"{V1}/delete/{ids[0]}")).status == 200
        resp = await api.client.post(f"{V1}/upload", data=form(content))
        assert resp.status == 200


async def test_an_upload_outgrowing_the_quota_is_cut_off_while_streaming(api_with: ApiWith) -> None:
    async with api_with(user_quota_bytes=12_000) as limited_api:

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(64):
                yield b"\1" * 1024

        data = aiohttp.FormData()
        data.add_field("file", chunks(), filename="big.png", content_type="image/png")
        resp = await limited_api.client.post(f"{V1}/upload", data=data)
        assert resp.status == 507
        body = await resp.json()
        assert (body["used_bytes"], body["limit_bytes"]) == (0, 12_000)
        await assert_nothing_stored(limited_api)


async def test_the_file_quota_is_403_with_the_figures(api_with: ApiWith) -> None:
    async with api_with(user_quota_files=1) as limited_api:
        assert (await limited_api.client.post(f"{V1}/upload", data=form(b"\x89PNG", "a.png"))).status == 200
        resp = await limited_api.client.post(f"{V1}/upload", data=form(b"\x89PNG", "b.png"))
        assert resp.status == 403
        body = await resp.json()
        assert (body["used_files"], body["limit_files"]) == (1, 1)
        assert "File quota exceeded" in body["status"]
        await assert_nothing_stored(limited_api, records=1)


async def test_a_second_concurrent_upload_gets_429_with_retry_after(api_with: ApiWith) -> None:
    async with api_with(max_concurrent_uploads_per_user=1) as limited_api:
        api = limited_api
        request, part = upload_head(declared=10 * MIB)
        _reader, writer = await raw_connection(api)
        writer.write(request + part + b"\0" * 4096)
        await writer.drain()

        def streaming() -> bool:
            return any(p.name.startswith(".upload-") for p in api.stored_paths())

        await eventually(streaming, what="the first upload to be streaming")
        resp = await api.client.post(f"{V1}/upload", data=form(b"\x89PNG", "b.png"))
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "10"
        body = await resp.json()
        assert (body["uploads_in_progress"], body["limit_uploads"]) == (1, 1)

        writer.close()  # the first client goes away: its slot and its partial file with it

        async def accepted() -> bool:
            retry = await api.client.post(f"{V1}/upload", data=form(b"\x89PNG", "c.png"))
            return retry.status == 200

        await eventually(accepted, what="an upload once the first one is gone")
        await assert_nothing_stored(api, records=1)


async def test_a_body_that_stalls_is_408_and_leaves_nothing(api_with: ApiWith) -> None:
    async with api_with(http_body_timeout_s=0.5) as limited_api:
        request, part = upload_head(declared=MIB)
        reader, writer = await raw_connection(limited_api)
        writer.write(request + part + b"\0" * 1000)
        await writer.drain()
        async with asyncio.timeout(20):
            status, headers, body = await read_answer(reader)
        writer.close()
        assert status == 408
        assert headers["content-type"].startswith("application/json")
        assert "Request body timeout: no data received for 0.5 s" in json.loads(body)["status"]
        await assert_nothing_stored(limited_api)


async def test_a_job_submission_whose_body_stalls_is_408(api_with: ApiWith) -> None:
    async with api_with(http_body_timeout_s=0.5) as limited_api:
        reader, writer = await raw_connection(limited_api)
        writer.write(
            f"POST {V1}/job HTTP/1.1\r\nHost: caesar\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n{".encode()
        )
        await writer.drain()
        async with asyncio.timeout(20):
            status, _, body = await read_answer(reader)
        writer.close()
        assert status == 408
        assert "Request body timeout" in json.loads(body)["status"]
        assert await limited_api.jobs_docs() == []


async def test_a_client_that_never_finishes_its_headers_is_disconnected(api_with: ApiWith) -> None:
    async with api_with(http_header_timeout_s=0.5) as limited_api:
        reader, writer = await raw_connection(limited_api)
        writer.write(f"GET {V1}/fileids HTTP/1.1\r\nHost: caesar\r\nX-Slow: ".encode())
        await writer.drain()
        async with asyncio.timeout(20):
            assert await reader.read() == b""  # closed by the server, nothing answered
        writer.close()

        reader, writer = await raw_connection(limited_api)
        writer.write(get(f"{V1}/fileids"))
        status, _, _ = await read_answer(reader)
        writer.close()
        assert status == 200


async def test_connections_beyond_the_limit_get_503_and_are_closed(api_with: ApiWith) -> None:
    async with api_with(http_max_connections=2) as limited_api:
        api = limited_api
        held = []
        for _ in range(2):
            reader, writer = await raw_connection(api)
            writer.write(get(f"{V1}/fileids"))
            status, _, _ = await read_answer(reader)
            assert status == 200
            held.append((reader, writer))

        reader, writer = await raw_connection(api)
        writer.write(get(f"{V1}/fileids"))
        status, headers, body = await read_answer(reader)
        assert status == 503
        assert headers["retry-after"] == "1"
        assert json.loads(body) == {
            "status": "Too many connections: the limit is 2; retry shortly",
            "limit_connections": 2,
        }
        async with asyncio.timeout(20):
            assert await reader.read() == b""  # and the connection is closed
        writer.close()

        # Probes are answered whatever the count, and a held connection keeps working.
        reader, writer = await raw_connection(api)
        writer.write(get("/healthz"))
        assert (await read_answer(reader))[0] == 200
        writer.close()
        held[0][1].write(get(f"{V1}/fileids"))
        assert (await read_answer(held[0][0]))[0] == 200

        held[1][1].close()

        async def served() -> bool:
            reader, writer = await raw_connection(api)
            writer.write(get(f"{V1}/fileids"))
            status = (await read_answer(reader))[0]
            writer.close()
            return status == 200

        await eventually(served, what="a new connection once one closed")
        held[0][1].close()
