"""The v1 lists streamed without ``?limit=`` send the bytes ``web.json_response`` would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from caesar_api.entrypoints.routes import streamed_lists
from caesar_api.entrypoints.routes.streamed_lists import batches, stream_array, stream_two_arrays
from caesar_common.store import Document


def docs(count: int) -> list[Document]:
    return [{"_id": f"{i:032x}", "name": f"café {i}", "n": i} for i in range(count)]


async def items_of(values: list[Document]) -> AsyncIterator[Document]:
    for value in values:
        yield value


def render(doc: Document) -> dict[str, Any]:
    return {"id": doc["_id"], "name": doc["name"], "n": doc["n"]}


async def answer(handler: Any) -> tuple[bytes, Any]:
    app = web.Application()
    app.router.add_get("/", handler)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        resp = await client.get("/")
        assert resp.status == 200
        return await resp.read(), resp.headers
    finally:
        await client.close()


async def test_batches_cut_a_stream() -> None:
    cut = [len(b) async for b in batches(items_of(docs(7)), 3)]
    assert cut == [3, 3, 1]
    assert [b async for b in batches(items_of([]), 3)] == []


@pytest.mark.parametrize("count", [0, 1, 5, 100, 101, 200, 1203])
async def test_an_array_is_byte_for_byte_what_json_response_sends(count: int) -> None:
    values = docs(count)

    async def streamed(request: web.Request) -> web.StreamResponse:
        return await stream_array(request, items_of(values), render, batch_size=100)

    body, headers = await answer(streamed)
    assert body == json.dumps([render(v) for v in values]).encode()
    assert headers["Content-Type"] == web.json_response([]).content_type + "; charset=utf-8"
    # One batch is answered whole, as before; more are streamed.
    assert ("Content-Length" in headers) == (count <= 100)
    assert (headers.get("Transfer-Encoding") == "chunked") == (count > 100)


@pytest.mark.parametrize("count", [0, 1, 100, 101, 1203])
async def test_two_arrays_from_one_read_match_the_built_object(
    count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streamed_lists, "SPOOL_MEMORY_BYTES", 1024)  # the spool goes to disk
    values = docs(count)
    reads: list[int] = []

    async def counted() -> AsyncIterator[Document]:
        reads.append(1)
        for value in values:
            yield value

    async def streamed(request: web.Request) -> web.StreamResponse:
        return await stream_two_arrays(
            request, counted(), ("file_ids", "files"), (lambda d: d["_id"], render), batch_size=100
        )

    body, headers = await answer(streamed)
    assert ("Content-Length" in headers) == (count <= 100)
    expected = {"file_ids": [v["_id"] for v in values], "files": [render(v) for v in values]}
    assert body == json.dumps(expected).encode()
    assert reads == [1]
