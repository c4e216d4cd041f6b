"""The v2 file routes, and v1 ``/fileids`` without ``limit``, on the real broker and database."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from caesar_api.domain.responses import file_record
from caesar_common.ids import new_file_id
from tests.integration.api_support import V1, RunningApi, api_settings, radio_fits, running_api

pytestmark = pytest.mark.integration

V2 = "/api/v2"
PROBLEM = "application/problem+json"
PAGE = 4


@pytest.fixture
async def api(tmp_path: Path, amqp_url: str, mongo_url: str, db_prefix: str) -> AsyncIterator[RunningApi]:
    settings = api_settings(
        tmp_path, amqp_url, mongo_url, db_prefix, max_upload_bytes=2 * 1024 * 1024, default_page_size=PAGE
    )
    async with running_api(settings) as running:
        yield running


def form(content: bytes, filename: str = "map.fits", tag: str | None = None) -> aiohttp.FormData:
    data = aiohttp.FormData(quote_fields=False)  # the file name as a browser sends it
    if tag is not None:
        data.add_field("tag", tag)
    data.add_field("file", content, filename=filename, content_type="application/octet-stream")
    return data


async def upload(
    api: RunningApi, content: bytes, filename: str = "map.fits", tag: str = ""
) -> dict[str, Any]:
    resp = await api.client.post(f"{V2}/files", data=form(content, filename, tag))
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    assert resp.headers["Location"] == f"{V2}/files/{body['file_id']}"
    return body


async def problem_of(resp: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM
    body: dict[str, Any] = await resp.json()
    assert body["status"] == status
    assert body["detail"]
    return body


async def test_upload_get_download_delete(api: RunningApi) -> None:
    content = radio_fits()
    body = await upload(api, content, "VGPS cont été.fits", tag="survey")
    file_id = body["file_id"]
    assert body["filename"] == "VGPS cont été.fits"
    assert body["format"] == "fits"
    assert body["size_bytes"] == len(content)
    assert body["tag"] == "survey"
    assert body["uploaded_at"].endswith("+00:00")
    assert body["fits"] is not None
    assert body["links"] == {"self": f"{V2}/files/{file_id}", "content": f"{V2}/files/{file_id}/content"}

    got = await api.client.get(f"{V2}/files/{file_id}")
    assert got.status == 200
    assert await got.json() == body

    data = await api.client.get(f"{V2}/files/{file_id}/content")
    assert data.status == 200
    assert hashlib.sha256(await data.read()).digest() == hashlib.sha256(content).digest()
    assert data.headers["Content-Type"] == "application/fits"
    assert "filename*=UTF-8''VGPS%20cont%20%C3%A9t%C3%A9.fits" in data.headers["Content-Disposition"]

    gone = await api.client.delete(f"{V2}/files/{file_id}")
    assert gone.status == 204
    await problem_of(await api.client.get(f"{V2}/files/{file_id}"), 404)
    await problem_of(await api.client.get(f"{V2}/files/{file_id}/content"), 404)
    await problem_of(await api.client.delete(f"{V2}/files/{file_id}"), 404)
    assert not api.stored_paths()
    [record] = await api.files_docs()
    assert record["deleted"] is True


async def test_upload_refusals_are_problems_and_keep_nothing(api: RunningApi) -> None:
    not_fits = await problem_of(await api.client.post(f"{V2}/files", data=form(b"hello" * 1000)), 400)
    assert "FITS" in not_fits["detail"]
    too_big = await api.client.post(f"{V2}/files", data=form(b"SIMPLE  =" + bytes(3 * 1024 * 1024)))
    assert too_big.status == 413
    await problem_of(await api.client.post(f"{V2}/files", data=b"x"), 400)
    assert not api.stored_paths()
    assert await api.files_docs() == []


async def test_another_users_file_is_not_found(api: RunningApi) -> None:
    file_id = new_file_id()
    await api.runtime.collection("files").insert_one(file_doc(file_id, owner="bob"))
    for method, path in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
        resp = await api.client.request(method, f"{V2}/files/{file_id}{path}")
        await problem_of(resp, 404)
    await problem_of(await api.client.get(f"{V2}/files/not-an-id"), 404)


async def test_list_is_cursor_paginated_newest_first(api: RunningApi) -> None:
    ids = [(await upload(api, radio_fits(16)))["file_id"] for _ in range(PAGE + 2)]
    first = await api.client.get(f"{V2}/files")
    assert first.status == 200
    page = await first.json()
    assert [f["file_id"] for f in page["items"]] == ids[::-1][:PAGE]
    assert page["next"] == f"{V2}/files?limit={PAGE}&after={ids[2]}"
    assert first.headers["Link"] == f'<{page["next"]}>; rel="next"'
    rest = await (await api.client.get(page["next"])).json()
    assert [f["file_id"] for f in rest["items"]] == ids[1::-1]
    assert rest["next"] is None
    for params in ({"limit": "0"}, {"after": "nope"}, {"after": new_file_id()}):
        await problem_of(await api.client.get(f"{V2}/files", params=params), 400)


# -- v1 /fileids without limit: every file ----------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def file_doc(
    file_id: str, *, owner: str = "anonymous", minute: int = 0, deleted: bool = False
) -> dict[str, Any]:
    return {
        "_id": file_id,
        "owner": owner,
        "filename_orig": f"map-{minute}.fits",
        "ext": "fits",
        "size_bytes": 2880 + minute,
        "sha256": "ab" * 32,
        "tag": "",
        "uploaded_at": T0 + timedelta(minutes=minute),
        "fits": None,
        "deleted": deleted,
    }


async def test_v1_fileids_without_limit_lists_every_file(api: RunningApi) -> None:
    count = 1203  # more than the default page, more than one cursor batch
    docs = [file_doc(new_file_id(), minute=i) for i in range(count)]
    docs.append(file_doc(new_file_id(), minute=5000, deleted=True))
    docs.append(file_doc(new_file_id(), owner="bob", minute=6000))
    await api.runtime.collection("files").insert_many(docs)

    resp = await api.client.get(f"{V1}/fileids")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert "Link" not in resp.headers
    body = await resp.json()
    mine = sorted(docs[:count], key=lambda d: d["uploaded_at"], reverse=True)
    # The v1 shape, exactly: the ids, and the records as the paged list renders them.
    assert body == {"file_ids": [d["_id"] for d in mine], "files": [file_record(d) for d in mine]}

    paged = await api.client.get(f"{V1}/fileids", params={"limit": "2"})
    page = await paged.json()
    assert page["file_ids"] == [d["_id"] for d in mine[:2]]
    assert set(page) == {"file_ids", "files"}
    assert 'rel="next"' in paged.headers["Link"]
    after = await api.client.get(f"{V1}/fileids", params={"after": mine[0]["_id"]})
    assert (await after.json())["file_ids"] == [d["_id"] for d in mine[1 : PAGE + 1]]


async def test_v1_fileids_of_nobody_is_empty(api: RunningApi) -> None:
    resp = await api.client.get(f"{V1}/fileids")
    assert resp.status == 200
    assert await resp.json() == {"file_ids": [], "files": []}
