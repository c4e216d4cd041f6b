"""tar.gz of a job directory, streamed while it is built.

A job directory can hold gigabytes of maps; building the archive first would need that
much disk or memory and delay the first byte. Instead ``tarfile`` runs in a worker
thread writing into a bounded queue that the HTTP handler drains, so memory stays at a
few chunks and a slow client slows the compression down (back-pressure). Only regular
files and directories go in: symbolic links and devices are skipped, so nothing outside
the job directory can leak into an archive. Only the job's outputs go in
(:func:`caesar_common.job_outputs.is_job_output`): not the scratch directory ``tmp/``
(the steps' ``HOME`` and ``TMPDIR``, with the ``.cache/`` and ``.config/`` that
matplotlib and astropy leave) nor hidden files such as a temporary being renamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import stat
import tarfile
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from caesar_common.job_outputs import is_job_output

CHUNK_BYTES = 256 * 1024
QUEUE_CHUNKS = 8
_DONE = b""


class ArchiveAborted(Exception):
    """The reader went away; the writer thread stops."""


def _entries(root: Path) -> Iterator[tuple[Path, str]]:
    """(path, name inside the archive) of every output directory and regular file under ``root``."""
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for entry in items:
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            path = Path(entry.path)
            rel = path.relative_to(root).as_posix()
            if not is_job_output(rel):
                continue
            if stat.S_ISDIR(mode):
                yield path, rel
                stack.append(path)
            elif stat.S_ISREG(mode):
                yield path, rel


class _QueueWriter:
    """File-like sink for tarfile/gzip that hands fixed-size chunks to the event loop."""

    def __init__(self, queue: asyncio.Queue[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._queue = queue
        self._loop = loop
        self._buffer = bytearray()
        self.aborted = False

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) >= CHUNK_BYTES:
            self._send(bytes(self._buffer[:CHUNK_BYTES]))
            del self._buffer[:CHUNK_BYTES]
        return len(data)

    def flush(self) -> None:
        """Buffered data is sent by :meth:`close_stream`; nothing to do per flush."""

    def close_stream(self) -> None:
        if self._buffer:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        self._send(_DONE)

    def _send(self, chunk: bytes) -> None:
        future = asyncio.run_coroutine_threadsafe(self._queue.put(chunk), self._loop)
        while True:
            if self.aborted:
                future.cancel()
                raise ArchiveAborted
            try:
                future.result(timeout=0.5)
                return
            except FutureTimeout:
                continue


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Drop server account names and ids from archive entries."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _build(root: Path, arcroot: str, level: int, sink: _QueueWriter) -> None:
    gz = gzip.GzipFile(filename="", mode="wb", fileobj=sink, compresslevel=level, mtime=0)  # type: ignore[arg-type]
    with gz, tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        tar.add(root, arcname=arcroot, recursive=False, filter=_anonymous)
        for path, rel in _entries(root):
            try:
                tar.add(path, arcname=f"{arcroot}/{rel}", recursive=False, filter=_anonymous)
            except FileNotFoundError:
                continue
    sink.close_stream()


async def stream_tar_gz(root: Path, arcroot: str, *, level: int = 6) -> AsyncGenerator[bytes, None]:
    """Yield the gzip-compressed tar of ``root`` (entries under ``arcroot/``) chunk by chunk.

    Stopping the iteration early (client gone) stops the worker thread too.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
    sink = _QueueWriter(queue, loop)
    worker: asyncio.Future[Any] = asyncio.ensure_future(asyncio.to_thread(_build, root, arcroot, level, sink))
    getter: asyncio.Future[bytes] | None = None
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, worker}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done() and worker.exception() is not None:
                worker.result()  # re-raises the writer's error
            # A writer that finished has put everything, end marker included, in the queue.
            chunk = await getter
            if chunk == _DONE:
                break
            yield chunk
        await worker
    finally:
        if getter is not None:
            getter.cancel()
        sink.aborted = True
        while not queue.empty():
            queue.get_nowait()
        # Wait for the thread to notice (within one put timeout); its error, if any, was
        # raised above already or no longer matters to a reader that left.
        with contextlib.suppress(Exception):
            await asyncio.shield(worker)
