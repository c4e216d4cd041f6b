"""HTTP to the caesar-rest v2 API: auth header, error mapping, pages, streamed bodies.

Every error leaves here as a :class:`CliError` with its exit code, so commands only deal
with successful answers. Bodies in both directions are streamed in chunks: a 4 GiB image
or archive never sits in memory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urljoin

import httpx

from caesar_cli.auth import TokenSource
from caesar_cli.codes import ExitCode
from caesar_cli.errors import CliError, http_error

V2 = "/api/v2"
CHUNK = 256 * 1024

Progress = Callable[[int], None]
"""Called with the number of bytes just moved."""


def segment(value: str) -> str:
    """An id as one path segment: a ``/`` or ``..`` in user input never reaches another route."""
    return quote(value, safe="")


class ProgressReader:
    """A binary file whose reads report their size: the upload's progress, chunk by chunk.

    httpx streams a multipart file part by calling ``read`` in chunks and learns its length
    from ``fileno``/``seek``/``tell``, so the body is never read whole.
    """

    def __init__(self, file: IO[bytes], on_read: Progress) -> None:
        self._file = file
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        if data:
            self._on_read(len(data))
        return data

    def fileno(self) -> int:
        return self._file.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()


class Api:
    """One server: its base URL, an HTTP client and where tokens come from."""

    def __init__(self, base_url: str, http: httpx.Client, tokens: TokenSource) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.tokens = tokens

    def url(self, path: str) -> str:
        return urljoin(self.base_url + "/", path.lstrip("/")) if not path.startswith("http") else path

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        token = self.tokens.get()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _unreachable(self, exc: httpx.HTTPError) -> CliError:
        return CliError(f"Cannot reach the server at {self.base_url}: {exc}", ExitCode.SERVER)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request whose error answer becomes a :class:`CliError`."""
        headers = self.headers(kwargs.pop("headers", None))
        try:
            resp = self.http.request(method, self.url(path), headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if resp.status_code >= 400:
            raise http_error(resp.status_code, resp.content, resp.reason_phrase)
        return resp

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def post_json(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body).json()

    def items(
        self, path: str, params: Mapping[str, Any], limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a v2 list, following ``next`` page after page (at most ``limit``)."""
        url: str | None = path
        query: Mapping[str, Any] | None = params
        count = 0
        while url:
            page = self.get_json(url, query)
            for item in page.get("items", []):
                yield item
                count += 1
                if limit is not None and count >= limit:
                    return
            url, query = page.get("next"), None  # ``next`` carries the whole query

    def upload(self, path: Path, tag: str | None, on_progress: Progress) -> Any:
        """``POST /api/v2/files``: the file streamed as the multipart part ``file``."""
        data = {"tag": tag} if tag else None
        with path.open("rb") as raw:
            files = {"file": (path.name, ProgressReader(raw, on_progress), "application/octet-stream")}
            return self.request("POST", f"{V2}/files", files=files, data=data).json()

    @contextlib.contextmanager
    def stream(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[httpx.Response]:
        """A GET whose body is read in chunks by the caller; error answers raise."""
        try:
            with self.http.stream("GET", self.url(path), params=params, headers=self.headers()) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise http_error(resp.status_code, resp.content, resp.reason_phrase)
                yield resp
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc


def content_length(resp: httpx.Response) -> int | None:
    value = resp.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def filename_of(resp: httpx.Response, fallback: str) -> str:
    """The file name of ``Content-Disposition``, reduced to a bare name (never a path)."""
    disposition = resp.headers.get("Content-Disposition", "")
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value:
            name = Path(value.strip().strip('"')).name
            if name and name not in (".", ".."):
                return name
    return fallback


def save_body(resp: httpx.Response, dest: Path, on_progress: Progress) -> int:
    """Write the body to ``dest`` through a temporary file: a cut download leaves nothing."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    total = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in resp.iter_bytes(CHUNK):
                out.write(chunk)
                total += len(chunk)
                on_progress(len(chunk))
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return total


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
