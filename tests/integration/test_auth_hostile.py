"""Hostile input against the api (auth off, the default; the same handlers serve both).

Every answer must be a JSON error with a 4xx code, never a 5xx or a stack trace, and
nothing hostile may leave a file or a record behind.
"""

from __future__ import annotations

import asyncio
import errno
import json
import resource
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.api_support import V1, RunningApi, api_settings, radio_fits, running_api
from tests.integration.service_support import eventually

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
SHELL_META = [
    "; touch /tmp/pwned",
    "$(id)",
    "`id`",
    "| cat /etc/passwd",
    "&& rm -rf /",
    "> /tmp/x",
    "\n id",
    "'\"",
]
HOSTILE_IDS = [
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f",
    "abc%00def",
    "a" * 5000,
    "ünïcödé-☃-\U0001d518",
    "12345",
    "1e309",
    "NaN",
    "-1",
    "%0a%0d",
    *[m.replace("/", "%2F") for m in SHELL_META],
]


@pytest.fixture
async def api(tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str) -> AsyncIterator[RunningApi]:
    settings = api_settings(tmp_path, amqp_url, mongo_url, db_prefix, max_upload_bytes=16 * MIB)
    async with running_api(settings) as running:
        yield running


async def upload(api: RunningApi, content: bytes | None = None, **fields: str) -> aiohttp.ClientResponse:
    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, value)
    data.add_field("file", content if content is not None else radio_fits(), filename="map.fits")
    return await api.client.post(f"{V1}/upload", data=data)


async def assert_json_4xx(resp: aiohttp.ClientResponse, what: object) -> dict[str, Any]:
    text = await resp.text()
    assert 400 <= resp.status < 500, (what, resp.status, text[:300])
    body = json.loads(text)
    assert isinstance(body, dict)
    assert "Traceback" not in text
    return body


async def test_hostile_ids_in_every_id_route(api: RunningApi) -> None:
    routes = [
        ("GET", "download/{}"),
        ("POST", "download/{}"),
        ("GET", "delete/{}"),
        ("GET", "job/{}/status"),
        ("GET", "job/{}/output"),
        ("POST", "job/{}/cancel"),
        ("GET", "app/{}/describe"),
    ]
    for method, template in routes:
        for hostile in HOSTILE_IDS:
            resp = await api.client.request(method, f"{V1}/" + template.format(hostile))
            body = await assert_json_4xx(resp, (method, template, hostile[:40]))
            assert len(body["status"]) < 400  # echoed ids are cut, never the whole input
    for param in ("uuid", "after", "limit"):
        for hostile in ["../x", "\x00", "9" * 400, "-1", "1e309", "NaN", *SHELL_META]:
            target = "download" if param == "uuid" else "fileids"
            resp = await api.client.get(f"{V1}/{target}", params={param: hostile})
            await assert_json_4xx(resp, (param, hostile))
    assert api.stored_paths() == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"app": "aegean", "job_inputs": {"seedthr": NaN}, "data_inputs": "x"}',
        b'{"app": "aegean", "job_inputs": {"seedthr": Infinity}, "data_inputs": "x"}',
        b'{"app": "aegean", "job_inputs": {"seedthr": -Infinity}, "data_inputs": "x"}',
        b'{"app": "aegean", "job_inputs": {"seedthr": 1e999}, "data_inputs": "x"}',
        b'{"app": "aegean", "job_inputs": {"seedthr": ' + b"9" * 5000 + b'}, "data_inputs": "x"}',
        b'{"app": "aegean", "job_inputs": {"seedthr": "5"}, "data_inputs": "x"}',
        b'{"app": 5, "job_inputs": [], "data_inputs": 7}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"\xff\xfe\x00garbage",
        b'"just a string"',
        b"null",
        b"",
    ],
    ids=lambda b: repr(b[:30]),
)
async def test_hostile_job_bodies(api: RunningApi, body: bytes) -> None:
    resp = await api.client.post(f"{V1}/job", data=body, headers={"Content-Type": "application/json"})
    await assert_json_4xx(resp, body[:40])
    assert await api.jobs_docs() == []


async def test_shell_metacharacters_in_every_job_string(api: RunningApi) -> None:
    resp = await upload(api)
    file_id = (await resp.json())["uuid"]
    for meta in SHELL_META:
        for body in (
            {"app": meta, "job_inputs": {}, "data_inputs": file_id},
            {"app": "aegean", "job_inputs": {"seedthr": meta}, "data_inputs": file_id},
            {"app": "aegean", "job_inputs": {meta: 1}, "data_inputs": file_id},
            {"app": "aegean", "job_inputs": {}, "data_inputs": file_id + meta},
            {"app": "aegean", "job_inputs": {"inputfile": f"/data/{file_id}.fits{meta}"}},
        ):
            r = await api.client.post(f"{V1}/job", json=body)
            await assert_json_4xx(r, body)
        # A tag is free text: accepted as data, stored as given, never interpreted.
        r = await api.client.post(
            f"{V1}/job", json={"app": "aegean", "job_inputs": {}, "data_inputs": file_id, "tag": meta}
        )
        assert r.status in (202, 400), await r.text()
    assert not Path("/tmp/pwned").exists()


async def test_ten_megabyte_json_body(api: RunningApi) -> None:
    big = json.dumps({"app": "aegean", "job_inputs": {"pad": "x" * (10 * MIB)}, "data_inputs": "0" * 32})
    resp = await api.client.post(f"{V1}/job", data=big, headers={"Content-Type": "application/json"})
    assert resp.status == 413
    await assert_json_4xx(resp, "10MB")
    assert await api.jobs_docs() == []


async def test_multipart_with_many_parts(api: RunningApi) -> None:
    data = aiohttp.FormData()
    for i in range(5000):
        data.add_field(f"junk{i}", "x")
    data.add_field("file", radio_fits(), filename="map.fits")
    resp = await api.client.post(f"{V1}/upload", data=data)
    # Extra parts are skipped; the file is stored once.
    assert resp.status == 200, await resp.text()
    assert len(await api.files_docs()) == 1


async def test_hostile_filenames_and_tags(api: RunningApi) -> None:
    # (Control characters cannot even be sent: the HTTP client refuses them in headers.)
    for name in ["../../etc/passwd.fits", "$(id).fits", "; rm -rf ~.fits", "`id`.fits", "ü" * 3000 + ".fits"]:
        data = aiohttp.FormData()
        data.add_field("file", radio_fits(), filename=name)
        resp = await api.client.post(f"{V1}/upload", data=data)
        assert resp.status in (200, 400), (name[:20], await resp.text())
    # Whatever was stored sits under <data_root>/anonymous/<uuid>.fits: never the client name.
    for path in api.stored_paths():
        assert path.parent == api.settings.data_root / "anonymous"
        assert len(path.stem) == 32
    for tag in ["\x00", "x" * 10_000, *SHELL_META]:
        resp = await upload(api, tag=tag)
        assert resp.status in (200, 400), await resp.text()


async def test_truncated_upload_leaves_nothing(api: RunningApi) -> None:
    boundary = "caesarboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="map.fits"\r\n'
        "Content-Type: application/fits\r\n\r\n"
    ).encode()
    payload = head + radio_fits()[:5000]  # no closing boundary: the client stopped sending
    host, port = api.client.host, api.client.port
    _reader, writer = await asyncio.open_connection(host, port)
    request = (
        f"POST {V1}/upload HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(payload) + 100_000}\r\n\r\n"
    ).encode()
    writer.write(request + payload)
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    async def nothing_left() -> bool:
        return api.stored_paths() == []

    await eventually(nothing_left, timeout_s=15, what="the partial upload to be removed")
    assert await api.files_docs() == []


async def test_upload_hitting_a_file_size_limit_is_507_and_leaves_nothing(api: RunningApi) -> None:
    """RLIMIT_FSIZE makes the kernel refuse writes past 4 MiB (EFBIG), as a full disk would.

    The limit applies to this whole test process for the few hundred ms of the upload;
    SIGXFSZ is ignored so the write fails with an error instead of killing us.
    """
    content = radio_fits(256) * 40  # ~10 MiB, starts like a FITS file
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4 * MIB, hard))
    try:
        resp = await upload(api, content)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    body = await resp.json()
    assert resp.status == 507, body
    assert "storage" in body["status"].lower()
    assert api.stored_paths() == []
    assert await api.files_docs() == []
    assert errno.EFBIG  # the errno the kernel gave (see NO_SPACE_ERRNOS)
