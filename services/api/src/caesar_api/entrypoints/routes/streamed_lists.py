"""v1 ``/jobs`` and ``/fileids`` without ``?limit=``: every item, as the old service answered.

Old clients never page, so a list that stopped at a page size would silently hide their
older items. The answer is written while one database cursor is read in batches: the
memory it takes does not grow with the number of items. The bytes are those
``web.json_response`` would send for the whole list (the same separators, the same key
order), so a client cannot tell a streamed list from a built one. A list that fits in one
batch, the common case, is not streamed at all: it is answered whole, with its
``Content-Length``, exactly as before.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import IO, Any, Final

from aiohttp import web

from caesar_common.store import Document

STREAM_BATCH: Final = 500
"""Items read per cursor batch and written per chunk of the answer."""
SPOOL_MEMORY_BYTES: Final = 1024 * 1024
"""Beyond this, the second array of ``/fileids`` waits in a temporary file, not in memory."""

Render = Callable[[Document], Any]


async def batches(items: AsyncIterator[Document], size: int) -> AsyncGenerator[list[Document]]:
    """``items`` in lists of at most ``size``."""
    batch: list[Document] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def json_items(items: list[Document], render: Render, *, first: bool) -> bytes:
    """Items as the inside of a JSON array, continuing one (``", "`` first) unless ``first``."""
    text = ", ".join(json.dumps(render(item)) for item in items)
    return (text if first else ", " + text).encode("utf-8")


async def _start(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_type = "application/json"
    response.charset = "utf-8"
    await response.prepare(request)
    return response


async def stream_array(
    request: web.Request, items: AsyncIterator[Document], render: Render, *, batch_size: int = STREAM_BATCH
) -> web.StreamResponse:
    """``[render(item), ...]`` for every item, written batch by batch."""
    async with aclosing(batches(items, batch_size)) as chunks:
        head: list[Document] = await anext(chunks, [])
        second = await anext(chunks, None)
        if second is None:
            return web.json_response([render(item) for item in head])
        response = await _start(request)
        await response.write(b"[" + json_items(head, render, first=True))
        await response.write(json_items(second, render, first=False))
        async for chunk in chunks:
            await response.write(json_items(chunk, render, first=False))
    await response.write(b"]")
    await response.write_eof()
    return response


def _spool_write(spool: IO[bytes], data: bytes) -> None:
    spool.write(data)


def _spool_read(spool: IO[bytes], size: int) -> bytes:
    return spool.read(size)


async def stream_two_arrays(
    request: web.Request,
    items: AsyncIterator[Document],
    names: tuple[str, str],
    renders: tuple[Render, Render],
    *,
    batch_size: int = STREAM_BATCH,
) -> web.StreamResponse:
    """``{"<a>": [render_a(item), ...], "<b>": [render_b(item), ...]}`` from one cursor.

    One read keeps the two arrays about the same items (a second query could see a file
    uploaded or deleted in between); the second array is spooled meanwhile, on disk once
    it outgrows :data:`SPOOL_MEMORY_BYTES`.
    """
    first_name, second_name = names
    render_first, render_second = renders
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES, mode="w+b") as spool:
        async with aclosing(batches(items, batch_size)) as chunks:
            head: list[Document] = await anext(chunks, [])
            second = await anext(chunks, None)
            if second is None:
                return web.json_response(
                    {
                        first_name: [render_first(i) for i in head],
                        second_name: [render_second(i) for i in head],
                    }
                )
            response = await _start(request)
            await response.write(f"{{{json.dumps(first_name)}: [".encode())
            first = True
            for chunk in (head, second):
                await response.write(json_items(chunk, render_first, first=first))
                await asyncio.to_thread(_spool_write, spool, json_items(chunk, render_second, first=first))
                first = False
            async for chunk in chunks:
                await response.write(json_items(chunk, render_first, first=False))
                await asyncio.to_thread(_spool_write, spool, json_items(chunk, render_second, first=False))
        await response.write(f"], {json.dumps(second_name)}: [".encode())
        await asyncio.to_thread(spool.seek, 0)
        while data := await asyncio.to_thread(_spool_read, spool, 64 * 1024):
            await response.write(data)
        await response.write(b"]}")
    await response.write_eof()
    return response
