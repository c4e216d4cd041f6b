"""The api's file routes against the real broker and database, through HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from caesar_common.events import FileDeleted, FileUploaded, decode_as
from tests.integration.api_support import V1, RunningApi, api_settings, radio_fits, running_api
from tests.integration.event_tap import EventTap
from tests.integration.service_support import eventually

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture
async def api(tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str) -> AsyncIterator[RunningApi]:
    settings = api_settings(tmp_path, amqp_url, mongo_url, db_prefix, max_upload_bytes=2 * MIB)
    async with running_api(settings) as running:
        yield running


def form(content: bytes | None, filename: str = "map.fits", tag: str | None = None) -> aiohttp.FormData:
    data = aiohttp.FormData()
    if tag is not None:
        data.add_field("tag", tag)
    if content is not None:
        data.add_field("file", content, filename=filename, content_type="application/octet-stream")
    return data


async def upload(api: RunningApi, content: bytes, filename: str = "map.fits", tag: str = "") -> str:
    resp = await api.client.post(f"{V1}/upload", data=form(content, filename, tag))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    return str(body["uuid"])


async def test_upload_fits_stores_file_facts_and_emits_event(api: RunningApi, amqp_url: str) -> None:
    content = radio_fits()
    async with EventTap(amqp_url, ["file.uploaded"]) as tap:
        resp = await api.client.post(
            f"{V1}/upload", data=form(content, "VGPS_cont_MOS017.fits", tag="survey")
        )
        assert resp.status == 200
        body = await resp.json()
        file_id = body["uuid"]
        envelope = await tap.wait_for(lambda e: e.subject == file_id)

    assert set(body) == {"date", "filename_orig", "format", "size", "status", "tag", "uuid"}
    assert body["status"] == "File uploaded with success"
    assert body["filename_orig"] == "VGPS_cont_MOS017.fits"
    assert body["format"] == "fits"
    assert body["tag"] == "survey"
    assert body["size"] == pytest.approx(len(content) / MIB)
    assert len(file_id) == 32
    assert int(file_id, 16) >= 0
    assert "T" in body["date"]

    sha = hashlib.sha256(content).hexdigest()
    event = decode_as(envelope, FileUploaded)
    assert (event.owner, event.sha256, event.size_bytes, event.ext) == (
        "anonymous",
        sha,
        len(content),
        "fits",
    )
    assert envelope.owner == "anonymous"

    [record] = await api.files_docs()
    assert record["_id"] == file_id
    assert record["owner"] == "anonymous"
    assert record["sha256"] == sha
    assert record["size_bytes"] == len(content)
    assert record["deleted"] is False
    facts = record["fits"]
    assert facts["shape"] == [64, 64]
    assert facts["celestial"]["projection"] == "SIN"
    assert facts["beam"] == {"bmaj_deg": 0.002, "bmin_deg": 0.0015, "bpa_deg": 30.0}
    assert facts["bunit"] == "JY/BEAM"
    assert api.stored_paths() == [api.settings.data_root / "anonymous" / f"{file_id}.fits"]
    assert api.stored_paths()[0].read_bytes() == content


async def test_list_download_and_redirects(api: RunningApi) -> None:
    content = radio_fits(32)
    first = await upload(api, content)
    png = await upload(api, b"\x89PNG not really", "pic.png", tag="p")

    resp = await api.client.get(f"{V1}/fileids")
    assert resp.status == 200
    body = await resp.json()
    assert body["file_ids"] == [png, first]  # newest first
    assert body["files"][0]["fileext"] == "png"
    assert body["files"][0]["tag"] == "p"
    assert set(body["files"][1]) == {
        "fileid",
        "filename_orig",
        "fileext",
        "filesize",
        "filedate",
        "tag",
    }
    page = await api.client.get(f"{V1}/fileids", params={"limit": "1"})
    assert (await page.json())["file_ids"] == [png]
    assert 'rel="next"' in page.headers["Link"]
    rest = await api.client.get(f"{V1}/fileids", params={"limit": "1", "after": png})
    assert (await rest.json())["file_ids"] == [first]
    assert "Link" not in rest.headers

    for method in ("GET", "POST"):
        resp = await api.client.request(method, f"{V1}/download/{first}")
        assert resp.status == 200
        assert await resp.read() == content
        assert resp.headers["Content-Disposition"] == f"attachment; filename={first}.fits"

    resp = await api.client.get(f"{V1}/download", params={"uuid": first}, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == f"{V1}/download/{first}"
    resp = await api.client.post(f"{V1}/download", data={"uuid": first}, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == f"{V1}/download/{first}"
    resp = await api.client.get(f"{V1}/download", params={"uuid": first})
    assert await resp.read() == content


async def test_delete_marks_record_removes_file_and_emits_event(api: RunningApi, amqp_url: str) -> None:
    file_id = await upload(api, radio_fits(16))
    async with EventTap(amqp_url, ["file.deleted"]) as tap:
        resp = await api.client.post(f"{V1}/delete/{file_id}")
        assert resp.status == 200
        assert await resp.json() == {"status": "File deleted and removed from DB"}
        envelope = await tap.wait_for(lambda e: e.subject == file_id)
    event = decode_as(envelope, FileDeleted)
    assert event.owner == "anonymous"
    assert event.size_bytes > 0
    [record] = await api.files_docs()
    assert record["deleted"] is True
    assert api.stored_paths() == []

    for path in (f"{V1}/delete/{file_id}", f"{V1}/download/{file_id}"):
        resp = await api.client.get(path)
        assert resp.status == 404
        assert await resp.json() == {"status": f"File with uuid {file_id} not found on the system!"}
    assert (await (await api.client.get(f"{V1}/fileids")).json())["file_ids"] == []


async def assert_nothing_stored(api: RunningApi) -> None:
    assert await api.files_docs() == []
    assert api.stored_paths() == []


@pytest.mark.parametrize(
    ("content", "filename", "status", "message"),
    [
        (None, "", 400, "Missing file field in request!"),
        (b"#!/bin/sh\nrm -rf /\n", "evil.sh", 415, "File format not allowed, allowed file types are: {"),
        (b"data", "noext", 415, "File format not allowed"),
        (b"just text, not FITS at all" * 10, "fake.fits", 400, "not a FITS file"),
        (b"SIMPLE  =                    T" + b" " * 3000, "broken.fits", 400, "Invalid FITS file"),
        (radio_fits(64)[: 2880 * 2], "short.fits", 400, "truncated"),
    ],
)
async def test_bad_uploads_store_nothing(
    api: RunningApi, content: bytes | None, filename: str, status: int, message: str
) -> None:
    resp = await api.client.post(f"{V1}/upload", data=form(content, filename, tag="t"))
    assert resp.status == status
    assert resp.content_type == "application/json"
    assert message in (await resp.json())["status"]
    await assert_nothing_stored(api)


async def test_empty_filename_and_non_multipart_are_refused(api: RunningApi) -> None:
    writer = aiohttp.MultipartWriter("form-data")
    part = writer.append(b"content")
    part.set_content_disposition("form-data", name="file", filename="")
    resp = await api.client.post(f"{V1}/upload", data=writer)
    assert resp.status == 400
    assert "Empty filename" in (await resp.json())["status"]

    resp = await api.client.post(f"{V1}/upload", json={"file": "x"})
    assert resp.status == 400
    assert "Missing file field in request!" in (await resp.json())["status"]
    await assert_nothing_stored(api)


async def test_too_large_upload_is_refused_without_leftovers(api: RunningApi) -> None:
    # Known length: refused from Content-Length before reading.
    resp = await api.client.post(f"{V1}/upload", data=form(b"\0" * (4 * MIB), "big.png"))
    assert resp.status == 413
    assert "too large" in (await resp.json())["status"]
    await assert_nothing_stored(api)

    # Unknown length (chunked): refused while streaming, the partial file removed.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"\1" * MIB

    data = aiohttp.FormData()
    data.add_field("file", chunks(), filename="big.png", content_type="image/png")
    resp = await api.client.post(f"{V1}/upload", data=data)
    assert resp.status == 413
    await assert_nothing_stored(api)


@pytest.mark.parametrize(
    "raw_path",
    [
        f"{V1}/download/..%2F..%2Fetc%2Fpasswd",
        f"{V1}/download/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        f"{V1}/delete/..%2F..%2Fetc%2Fpasswd",
        f"{V1}/download/0123456789ABCDEF0123456789ABCDEF",
        f"{V1}/download/{'a' * 5000}",
        f"{V1}/download?uuid=../../etc/passwd",
    ],
)
async def test_ids_that_are_not_ours_are_not_found(api: RunningApi, raw_path: str) -> None:
    (api.settings.data_root / "anonymous").mkdir(parents=True)
    url = api.client.make_url("").join(URL(raw_path, encoded=True))
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 404
        body = await resp.json()
    assert body["status"].startswith("File with uuid ")
    assert len(body["status"]) < 200
    assert "root:" not in body["status"]


async def test_errors_are_json_everywhere(api: RunningApi) -> None:
    resp = await api.client.get("/caesar/api/v1.0/nothing-here")
    assert resp.status == 404
    assert await resp.json() == {"status": "Not found"}
    resp = await api.client.put(f"{V1}/upload")
    assert resp.status == 405
    assert (await resp.json())["status"] == "Method not allowed"
    resp = await api.client.get(f"{V1}/fileids", params={"limit": "0"})
    assert resp.status == 400
    resp = await api.client.get(f"{V1}/fileids", params={"after": "zzz"})
    assert resp.status == 400


async def test_operational_routes_and_docs(api: RunningApi) -> None:
    assert (await api.client.get("/healthz")).status == 200
    assert (await api.client.get("/readyz")).status == 200
    metrics = await api.client.get("/metrics")
    assert "caesar_events_published_total" in await metrics.text()
    document = await (await api.client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    page = await api.client.get("/docs")
    assert page.content_type == "text/html"
    assert "swagger-ui-bundle.js" in await page.text()
    bundle = await api.client.get("/docs/swagger-ui-bundle.js")
    assert bundle.status == 200
    assert len(await bundle.read()) > 100_000
    assert (await api.client.get("/docs/index.j2")).status == 404
    assert (await api.client.get("/docs/..%2F..%2F__init__.py")).status == 404


async def test_upload_streams_without_buffering(
    tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str
) -> None:
    """A 64 MiB upload never holds more than a few chunks in memory (client and server).

    Speed lives in bench/; here the property that makes it fast is checked directly:
    a regression to whole-file buffering would allocate at least the file's size.
    """
    size = 64 * MIB
    source = tmp_path / "big.png"
    source.write_bytes(b"\x42" * size)
    settings = api_settings(tmp_path, amqp_url, mongo_url, db_prefix)
    async with running_api(settings) as running:
        with source.open("rb") as handle:
            data = aiohttp.FormData()
            data.add_field("file", handle, filename="big.png")
            tracemalloc.start()
            try:
                resp = await running.client.post(f"{V1}/upload", data=data)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        assert resp.status == 200
        assert (await resp.json())["size"] == 64.0
        assert peak < size / 4, f"upload allocated {peak / MIB:.1f} MiB at peak"


async def test_another_owners_file_is_invisible(api: RunningApi) -> None:
    file_id = await upload(api, radio_fits(16))
    await api.runtime.collection("files").update_one({"_id": file_id}, {"$set": {"owner": "bob"}})
    for method, path in (("GET", "download"), ("POST", "download"), ("GET", "delete")):
        resp = await api.client.request(method, f"{V1}/{path}/{file_id}")
        assert resp.status == 404
    assert (await (await api.client.get(f"{V1}/fileids")).json())["file_ids"] == []
    [record] = await api.files_docs()
    assert record["deleted"] is False


async def test_client_gone_mid_upload_leaves_nothing(api: RunningApi) -> None:
    boundary = "caesarboundary"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="cut.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    declared = len(head) + MIB + 64
    server = api.client.server
    _reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        (
            f"POST {V1}/upload HTTP/1.1\r\nHost: {server.host}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        ).encode()
        + head
        + b"\0" * (MIB // 2)
    )
    await writer.drain()

    async def partial_written() -> bool:
        return any(p.name.startswith(".upload-") for p in api.stored_paths())

    await eventually(partial_written, what="the partial upload to start")
    writer.close()

    async def cleaned() -> bool:
        return api.stored_paths() == []

    await eventually(cleaned, what="the partial upload to be removed")
    assert await api.files_docs() == []


async def test_body_ending_inside_the_file_part_is_refused(api: RunningApi) -> None:
    """A chunked body that ends cleanly but before the closing boundary is not a file."""
    boundary = "caesarboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.png"\r\n\r\n'
    ).encode() + b"\0" * 50_000
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        (
            f"POST {V1}/upload HTTP/1.1\r\nHost: {server.host}\r\nConnection: close\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
            f"{len(body):x}\r\n"
        ).encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 400 " in status_line
    assert b"malformed multipart" in rest
    await assert_nothing_stored(api)
