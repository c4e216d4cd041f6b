"""Bounded work and per-user limits of an upload, without a server.

The FITS check of a tile-compressed image (never decompressed whole, a limit on its
declared size, tiles checked before astropy inflates them), the quota rules, the upload
slots per user, the pace a body must keep, the connection count, durable storage, and
the upload use case with its quota and lock.
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import os
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from caesar_api.adapters.compressed import gzip_exceeds
from caesar_api.adapters.fits import DecompressedTooLargeError, NotFitsError, inspect_fits
from caesar_api.adapters.storage import UploadStorage
from caesar_api.domain.errors import ApiError
from caesar_api.domain.quota import Quota, Usage
from caesar_api.entrypoints.limits import BodyPace, ConnectionCount
from caesar_api.openapi.document import build_openapi
from caesar_api.service import files as file_cases
from caesar_api.service.files import ReceivedUpload
from caesar_api.service.upload_gate import RETRY_AFTER_S, UploadGate
from caesar_api.settings import ApiSettings
from caesar_common.events import FileUploaded
from caesar_common.ids import new_file_id
from caesar_common.store import Document
from tests.compressed_fits import compressed_image, radio_keywords
from tests.unit.fakes_api import FakeFiles, FakePendingUpload, FakeSpace

MIB = 1024 * 1024
OWNER = "alice"


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def traced_peak(run: Any) -> tuple[Any, int]:
    """What ``run()`` returns, and the most memory it held at once (Python and numpy)."""
    tracemalloc.start()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def gzip_of_zeros(total: int) -> bytes:
    """A gzip stream of ``total`` zero bytes, built without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * MIB
    out = [packer.compress(block) for _ in range(total // MIB)]
    return b"".join([*out, packer.flush()])


# --- the FITS check of compressed images ----------------------------------------------


def test_a_small_file_declaring_a_gigabyte_is_checked_on_a_few_tiles(tmp_path: Path) -> None:
    """17 KB declaring 1 GiB of pixels: decompressing it cost the api 1 GB and 4 s."""
    bomb = write(tmp_path / "bomb.fits", compressed_image(16384, 16384, header=radio_keywords()))
    assert bomb.stat().st_size < 32 * 1024

    facts, peak = traced_peak(lambda: inspect_fits(bomb))

    assert peak < 64 * MIB, f"the check held {peak / MIB:.0f} MiB"
    assert facts["shape"] == [16384, 16384]
    assert facts["bitpix"] == 32
    assert facts["beam"] == {"bmaj_deg": 0.002, "bmin_deg": 0.0015, "bpa_deg": 30.0}
    assert facts["celestial"]["projection"] == "SIN"
    pixels = facts["pixels"]
    assert (pixels["constant"], pixels["min"], pixels["all_blank"]) == (True, 7.0, False)


def test_a_declared_size_over_the_limit_is_refused_from_the_header_alone(tmp_path: Path) -> None:
    # The tiles are not gzip at all: reading any of them would fail differently.
    path = write(tmp_path / "big.fits", compressed_image(4096, 4096, tile_payload=b"not gzip" * 100))
    with pytest.raises(DecompressedTooLargeError) as caught:
        inspect_fits(path, max_decompressed_bytes=64 * MIB - 1)
    assert (caught.value.declared_bytes, caught.value.limit_bytes) == (64 * MIB, 64 * MIB - 1)
    assert "the limit is 67108863 bytes" in str(caught.value)
    with pytest.raises(NotFitsError, match="not valid gzip"):
        inspect_fits(path, max_decompressed_bytes=64 * MIB)


def test_a_tile_that_inflates_beyond_its_size_is_refused_without_inflating_it(tmp_path: Path) -> None:
    # One tile is 16 x 1024 int32 = 64 KiB; its gzip stream inflates to 100 MiB.
    payload = gzip_of_zeros(100 * MIB)
    path = write(tmp_path / "tile-bomb.fits", compressed_image(1024, 64, tile_payload=payload))

    def check() -> str:
        with pytest.raises(NotFitsError) as caught:
            inspect_fits(path)
        return str(caught.value)

    message, peak = traced_peak(check)
    assert "expands beyond its 16384 pixels" in message
    assert peak < 16 * MIB, f"the check held {peak / MIB:.0f} MiB"


def test_a_tile_larger_than_its_pixels_could_need_is_refused(tmp_path: Path) -> None:
    # A 16 x 8 tile needs at most 1 KiB; this one claims 64 KiB of random bytes.
    payload = gzip.compress(np.random.default_rng(3).bytes(64 * 1024))
    path = write(tmp_path / "fat.fits", compressed_image(8, 64, tile_payload=payload))
    with pytest.raises(NotFitsError, match="more than its 128 pixels could need"):
        inspect_fits(path)


def test_a_truncated_compressed_image_is_refused(tmp_path: Path) -> None:
    content = compressed_image(1024, 1024)
    path = write(tmp_path / "cut.fits", content[: len(content) - 2880])
    with pytest.raises(NotFitsError, match="truncated"):
        inspect_fits(path)


def test_tiles_too_large_to_sample_leave_the_pixels_unknown(tmp_path: Path) -> None:
    # One tile of 4096 x 2048 = 8 Mi pixels: more than the check decompresses per upload.
    path = write(tmp_path / "one-tile.fits", compressed_image(4096, 2048, tile_rows=2048))
    facts, peak = traced_peak(lambda: inspect_fits(path))
    assert facts["shape"] == [4096, 2048]
    assert facts["pixels"] is None
    assert peak < 16 * MIB


def real_compressed(path: Path, data: np.ndarray[Any, Any], **options: Any) -> Path:
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, **options)]).writeto(path)
    return path


@pytest.mark.parametrize(
    "options",
    [
        {"compression_type": "RICE_1"},
        {"compression_type": "GZIP_2"},
        {"compression_type": "HCOMPRESS_1"},
        {"compression_type": "RICE_1", "tile_shape": (32, 32)},
    ],
)
def test_real_compressed_images_are_sampled_like_plain_ones(tmp_path: Path, options: dict[str, Any]) -> None:
    data = np.random.default_rng(5).normal(0.0, 1e-3, (200, 300)).astype(np.float32)
    data[:20] = np.nan
    facts = inspect_fits(real_compressed(tmp_path / "c.fits", data, **options))
    assert facts["shape"] == [300, 200]
    assert facts["hdu"] == 1
    pixels = facts["pixels"]
    assert not pixels["all_blank"]
    assert not pixels["constant"]
    assert 0.7 < pixels["finite_fraction"] < 1.0
    assert pixels["min"] < 0 < pixels["max"]


def test_blank_and_constant_compressed_images_are_recognised(tmp_path: Path) -> None:
    blank = np.full((64, 64), np.nan, dtype=np.float32)
    facts = inspect_fits(real_compressed(tmp_path / "nan.fits", blank, compression_type="RICE_1"))
    assert facts["pixels"]["all_blank"] is True
    cube = np.full((2, 64, 64), 3, dtype=np.int16)
    facts = inspect_fits(real_compressed(tmp_path / "cube.fits", cube, compression_type="GZIP_1"))
    assert facts["shape"] == [64, 64, 2]
    assert (facts["pixels"]["constant"], facts["pixels"]["min"]) == (True, 3.0)


def chunks_of(data: bytes, size: int = 7) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def test_gzip_limit_reads_members_as_gzip_does() -> None:
    stream = gzip.compress(b"a" * 100) + b"\0\0\0" + gzip.compress(b"b" * 50)
    assert gzip.decompress(stream) == b"a" * 100 + b"b" * 50
    assert not gzip_exceeds(chunks_of(stream), 150)
    assert gzip_exceeds(chunks_of(stream), 149)
    assert gzip_exceeds(iter([gzip_of_zeros(8 * MIB)]), MIB)
    with pytest.raises(NotFitsError, match="not valid gzip"):
        gzip_exceeds(iter([b"plain bytes"]), 100)


# --- quotas -------------------------------------------------------------------------------


def test_quota_refuses_with_the_figures() -> None:
    quota = Quota(max_bytes=1000, max_files=3)
    quota.check_room(Usage(files=2, bytes=999))
    assert quota.bytes_left(Usage(files=2, bytes=999)) == 1

    with pytest.raises(ApiError) as files_full:
        quota.check_room(Usage(files=3, bytes=0))
    assert files_full.value.http_status == 403
    assert files_full.value.details == {"used_files": 3, "limit_files": 3}

    with pytest.raises(ApiError) as bytes_full:
        quota.check_room(Usage(files=0, bytes=1000))
    assert bytes_full.value.http_status == 507
    assert bytes_full.value.details == {"used_bytes": 1000, "limit_bytes": 1000}

    quota.check_keep(Usage(files=2, bytes=600), 400)
    with pytest.raises(ApiError) as too_big:
        quota.check_keep(Usage(files=2, bytes=600), 401)
    assert too_big.value.http_status == 507
    assert too_big.value.details == {"used_bytes": 600, "limit_bytes": 1000, "upload_bytes": 401}
    assert "600 bytes stored, this upload adds 401, the limit is 1000 bytes" in too_big.value.message


def test_zero_means_no_limit() -> None:
    quota = Quota(max_bytes=0, max_files=0)
    assert not quota.limited
    assert quota.bytes_left(Usage(files=10**6, bytes=10**15)) is None
    quota.check_room(Usage(files=10**6, bytes=10**15))
    quota.check_keep(Usage(files=10**6, bytes=10**15), 10**12)


# --- uploads in progress per user ---------------------------------------------------------


async def test_a_users_uploads_beyond_the_limit_get_429_others_do_not() -> None:
    gate = UploadGate(max_per_user=2)
    async with gate.slot(OWNER), gate.slot(OWNER):
        with pytest.raises(ApiError) as caught:
            async with gate.slot(OWNER):
                pass
        async with gate.slot("bob"):
            assert gate.active("bob") == 1
    assert caught.value.http_status == 429
    assert caught.value.headers == {"Retry-After": str(RETRY_AFTER_S)}
    assert caught.value.details == {"uploads_in_progress": 2, "limit_uploads": 2}
    assert gate.active(OWNER) == 0
    async with gate.slot(OWNER):
        assert gate.active(OWNER) == 1


async def test_a_failed_upload_gives_its_slot_back() -> None:
    gate = UploadGate(max_per_user=1)
    with pytest.raises(ConnectionResetError):
        async with gate.slot(OWNER):
            raise ConnectionResetError
    async with gate.slot(OWNER):
        pass
    assert gate.active(OWNER) == 0


# --- the pace of a body -----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_body_must_keep_a_minimum_average_rate_after_a_grace() -> None:
    clock = Clock()
    pace = BodyPace(idle_s=60, min_bytes_per_s=1000, clock=clock)
    clock.now += 60
    pace.add(1)  # within the grace: a slow start is fine
    clock.now += 40
    pace.add(39_999)  # 40 000 bytes, 40 s past the grace at 1000 B/s
    clock.now += 1
    with pytest.raises(ApiError) as caught:
        pace.add(999)
    assert caught.value.http_status == 408
    assert caught.value.details == {"bytes_per_s": 405, "min_bytes_per_s": 1000}  # 40 999 B in 101 s
    assert pace.received == 40_999
    clock.now += 1000
    BodyPace(idle_s=1, min_bytes_per_s=0, clock=clock).add(0)


async def test_a_read_that_waits_longer_than_the_idle_timeout_is_408() -> None:
    pace = BodyPace(idle_s=0.05, min_bytes_per_s=0)
    never = asyncio.Event()
    with pytest.raises(ApiError) as caught:
        async with pace.read():
            await never.wait()
    assert caught.value.http_status == 408
    assert "no data received for 0.05 s" in caught.value.message


# --- connections ------------------------------------------------------------------------


class FakeTransport(asyncio.BaseTransport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


def test_connections_beyond_the_limit_are_refused_until_one_closes() -> None:
    count = ConnectionCount(limit=2)
    first, second, third = FakeTransport(), FakeTransport(), FakeTransport()
    assert count.admit(first)
    assert count.admit(second)
    assert count.admit(first)  # a known connection's next request
    assert not count.admit(third)
    second.closing = True
    assert count.admit(third)
    assert len(count) == 2


# --- durable storage ----------------------------------------------------------------------


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Path]]:
    """Every fsync, as (kind, path) at the moment it happened."""
    calls: list[tuple[str, Path]] = []
    real = os.fsync

    def record(fd: int) -> None:
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        calls.append(("dir" if path.is_dir() else "file", path))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    return calls


async def test_an_upload_is_synced_before_its_rename_and_its_directory_after(
    tmp_path: Path, synced: list[tuple[str, Path]]
) -> None:
    storage = UploadStorage(tmp_path)
    file_id = new_file_id()
    upload = await storage.begin(OWNER, file_id)
    assert synced == [("dir", tmp_path)]  # the owner's new directory, in the data root
    await upload.write(b"SIMPLE  = T")
    await upload.finish()
    assert synced[1:] == [("file", upload.temp)]
    final = storage.path_of(OWNER, file_id, "fits")
    await upload.commit(final)
    assert synced[2:] == [("dir", tmp_path / OWNER)]
    assert final.read_bytes() == b"SIMPLE  = T"
    # A second upload of the same owner: the directory exists, only file and rename are synced.
    synced.clear()
    again = await storage.begin(OWNER, new_file_id())
    await again.finish()
    assert synced == [("file", again.temp)]
    await again.discard()


async def test_a_rename_that_cannot_be_synced_is_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = UploadStorage(tmp_path)
    file_id = new_file_id()
    upload = await storage.begin(OWNER, file_id)
    await upload.write(b"data")
    await upload.finish()
    real = os.fsync

    def failing(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).is_dir():
            raise OSError(errno.EIO, "I/O error")
        real(fd)

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="I/O error"):
        await upload.commit(storage.path_of(OWNER, file_id, "png"))
    await upload.discard()
    assert list((tmp_path / OWNER).iterdir()) == []


# --- the upload use case with its limits --------------------------------------------------


def received(pending: FakePendingUpload, ext: str = "png") -> ReceivedUpload:
    return ReceivedUpload(
        owner=OWNER,
        file_id=new_file_id(),
        filename=f"map.{ext}",
        ext=ext,
        tag="",
        sha256="ab" * 32,
        pending=pending,
    )


def stored(files: FakeFiles, size: int) -> None:
    file_id = new_file_id()
    files.records[file_id] = {"_id": file_id, "owner": OWNER, "deleted": False, "size_bytes": size}


async def test_an_upload_over_the_byte_quota_is_507_and_leaves_nothing() -> None:
    files, space = FakeFiles(), FakeSpace()
    stored(files, 700)
    pending = FakePendingUpload(space, size=400)
    with pytest.raises(ApiError) as caught:
        await file_cases.upload(received(pending), files=files, space=space, quota=Quota(max_bytes=1000))
    assert caught.value.http_status == 507
    assert caught.value.details == {"used_bytes": 700, "limit_bytes": 1000, "upload_bytes": 400}
    assert pending.discarded
    assert not space.stored
    assert not files.published


async def test_an_upload_over_the_file_quota_is_403_and_leaves_nothing() -> None:
    files, space = FakeFiles(), FakeSpace()
    stored(files, 1)
    deleted = new_file_id()
    files.records[deleted] = {"_id": deleted, "owner": OWNER, "deleted": True, "size_bytes": 1}
    pending = FakePendingUpload(space, size=1)
    with pytest.raises(ApiError) as caught:
        await file_cases.upload(received(pending), files=files, space=space, quota=Quota(max_files=1))
    assert caught.value.http_status == 403
    assert caught.value.details == {"used_files": 1, "limit_files": 1}
    assert pending.discarded
    assert not files.published
    # Deleted files count for nothing, other users' neither.
    assert await file_cases.admit(files, "bob", Quota(max_files=1)) == Usage(files=0, bytes=0)
    assert await file_cases.admit(files, OWNER, Quota(max_bytes=10, max_files=2)) == Usage(files=1, bytes=1)
    assert await file_cases.admit(files, OWNER, Quota()) is None  # no quota: not even read
    with pytest.raises(ApiError) as full:
        await file_cases.admit(files, OWNER, Quota(max_files=1))
    assert full.value.http_status == 403


async def test_a_compressed_image_over_the_declared_limit_is_413_with_the_figures() -> None:
    files, space = FakeFiles(), FakeSpace()
    pending = FakePendingUpload(space, size=17280)

    async def too_large(path: Path) -> dict[str, Any]:
        raise DecompressedTooLargeError(1 << 30, 1 << 20)

    with pytest.raises(ApiError) as caught:
        await file_cases.upload(received(pending, "fits"), files=files, space=space, read_facts=too_large)
    assert caught.value.http_status == 413
    assert caught.value.details == {"decompressed_bytes": 1 << 30, "limit_bytes": 1 << 20}
    assert "the limit is 1048576 bytes" in caught.value.message
    assert pending.discarded
    assert not files.records


class LockCheckingFiles(FakeFiles):
    """Records whether the owner's lock was held while the quota was read and the record written."""

    def __init__(self, lock: asyncio.Lock) -> None:
        super().__init__()
        self.lock = lock
        self.held: list[str] = []

    async def usage(self, owner: str) -> Usage:
        self.held.append(f"usage:{self.lock.locked()}")
        return await super().usage(owner)

    async def add(self, record: Document, event: FileUploaded) -> None:
        self.held.append(f"add:{self.lock.locked()}")
        await super().add(record, event)


async def test_the_quota_check_and_the_record_happen_under_the_owners_lock() -> None:
    lock = asyncio.Lock()
    files, space = LockCheckingFiles(lock), FakeSpace()
    await file_cases.upload(
        received(FakePendingUpload(space, size=10)),
        files=files,
        space=space,
        quota=Quota(max_bytes=100),
        owner_lock=lock,
    )
    assert files.held == ["usage:True", "add:True"]
    assert not lock.locked()


# --- settings and documentation -----------------------------------------------------------


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "CAESAR_MAX_DECOMPRESSED_BYTES": "1000",
        "CAESAR_USER_QUOTA_BYTES": "2000",
        "CAESAR_USER_QUOTA_FILES": "3",
        "CAESAR_MAX_CONCURRENT_UPLOADS_PER_USER": "1",
        "CAESAR_HTTP_HEADER_TIMEOUT_S": "5",
        "CAESAR_HTTP_BODY_TIMEOUT_S": "6",
        "CAESAR_UPLOAD_MIN_BYTES_PER_S": "0",
        "CAESAR_HTTP_MAX_CONNECTIONS": "7",
    }.items():
        monkeypatch.setenv(name, value)
    settings = ApiSettings()
    assert (settings.max_decompressed_bytes, settings.user_quota_bytes, settings.user_quota_files) == (
        1000,
        2000,
        3,
    )
    assert settings.max_concurrent_uploads_per_user == 1
    assert (settings.http_header_timeout_s, settings.http_body_timeout_s) == (5.0, 6.0)
    assert (settings.upload_min_bytes_per_s, settings.http_max_connections) == (0, 7)


def test_the_upload_documents_every_limit_with_its_figures() -> None:
    document = build_openapi(ApiSettings(user_quota_files=5, max_decompressed_bytes=1234))
    responses = document["paths"]["/caesar/api/v1.0/upload"]["post"]["responses"]
    assert {"403", "408", "413", "429", "503", "507"} <= set(responses)
    limit_status = {"$ref": "#/components/schemas/LimitStatus"}
    for status in ("403", "413", "429", "507"):
        assert responses[status]["content"]["application/json"]["schema"] == limit_status
    assert "Retry-After" in responses["429"]["headers"]
    assert "5 files" in responses["403"]["description"]
    assert "1234 bytes" in responses["413"]["description"]
    figures = document["components"]["schemas"]["LimitStatus"]["properties"]
    assert {"used_bytes", "limit_bytes", "used_files", "limit_files", "decompressed_bytes"} <= set(figures)
    assert "Too many connections" not in str(document["paths"]["/healthz"])
    assert "Retry-After" in responses["503"]["headers"]
    assert "not ready" in responses["503"]["description"]
    assert "More than 512 connections" in responses["503"]["description"]
    secured = build_openapi(ApiSettings(auth_enabled=True))["paths"]["/api/v2/apps"]["get"]["responses"]
    assert "realm's keys unavailable" in secured["503"]["description"]
    assert "connections are open" in secured["503"]["description"]
