"""Adapters that need no server: FITS inspection, archive streaming, upload storage."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from caesar_api.adapters.archive import stream_tar_gz
from caesar_api.adapters.fits import NotFitsError, inspect_fits
from caesar_api.adapters.storage import UploadStorage

FID = "67a49bf7555b41739095681bf52a1f99"


def radio_image(path: Path, *, cube: bool = False) -> Path:
    """A small continuum map: SIN projection, beam, optionally FREQ and STOKES axes."""
    wcs = WCS(naxis=4 if cube else 2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN", *(["FREQ", "STOKES"] if cube else [])]
    wcs.wcs.crval = [266.4, -28.9, *([1.4e9, 1.0] if cube else [])]
    wcs.wcs.crpix = [32.5, 32.5, *([1.0, 1.0] if cube else [])]
    wcs.wcs.cdelt = [-0.001, 0.001, *([1e6, 1.0] if cube else [])]
    header = wcs.to_header()
    header["BMAJ"] = 0.002
    header["BMIN"] = 0.0015
    header["BPA"] = 30.0
    header["BUNIT"] = "JY/BEAM"
    shape = (1, 1, 64, 64) if cube else (64, 64)
    fits.PrimaryHDU(np.zeros(shape, dtype=np.float32), header=header).writeto(path)
    return path


def test_fits_facts_of_a_map(tmp_path: Path) -> None:
    facts = inspect_fits(radio_image(tmp_path / "map.fits"))
    assert facts["naxis"] == 2
    assert facts["shape"] == [64, 64]
    assert facts["bitpix"] == -32
    assert facts["celestial"]["projection"] == "SIN"
    assert facts["celestial"]["ctype"] == ["RA---SIN", "DEC--SIN"]
    assert facts["beam"] == {"bmaj_deg": 0.002, "bmin_deg": 0.0015, "bpa_deg": 30.0}
    assert facts["bunit"] == "JY/BEAM"
    assert facts["frequency_hz"] is None


def test_fits_facts_of_a_cube_with_degenerate_axes(tmp_path: Path) -> None:
    facts = inspect_fits(radio_image(tmp_path / "cube.fits", cube=True))
    assert facts["shape"] == [64, 64, 1, 1]
    assert facts["frequency_hz"] == pytest.approx(1.4e9)
    assert facts["frequency_from"] == "CTYPE3"


def test_rest_frequency_and_aips_beam(tmp_path: Path) -> None:
    header = fits.Header()
    header["RESTFRQ"] = 1.42040575e9
    header["HISTORY"] = "AIPS   CLEAN BMAJ=  1.2500E-03 BMIN=  1.0000E-03 BPA=  45.00"
    path = tmp_path / "aips.fits"
    fits.PrimaryHDU(np.zeros((8, 8), dtype=np.float32), header=header).writeto(path)
    facts = inspect_fits(path)
    assert facts["frequency_hz"] == pytest.approx(1.42040575e9)
    assert facts["beam"] == {"bmaj_deg": 1.25e-3, "bmin_deg": 1e-3, "bpa_deg": 45.0}
    assert facts["celestial"] is None


@pytest.mark.parametrize(
    "content",
    [b"", b"hello world" * 100, b"SIMPLE  = garbage" + b" " * 3000],
)
def test_not_fits_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.fits"
    path.write_bytes(content)
    with pytest.raises(NotFitsError):
        inspect_fits(path)


def test_truncated_fits_is_refused(tmp_path: Path) -> None:
    path = radio_image(tmp_path / "map.fits")
    data = path.read_bytes()
    path.write_bytes(data[: 2880 * 2])
    with pytest.raises(NotFitsError, match="truncated"):
        inspect_fits(path)


def test_header_only_fits_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.fits"
    fits.PrimaryHDU().writeto(path)
    with pytest.raises(NotFitsError, match="no image"):
        inspect_fits(path)


def test_image_in_an_extension(tmp_path: Path) -> None:
    path = tmp_path / "ext.fits"
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 6), dtype=np.int16))])
    hdul.writeto(path)
    facts = inspect_fits(path)
    assert (facts["hdu"], facts["shape"], facts["bitpix"]) == (1, [6, 4], 16)


async def test_archive_streams_files_but_no_links(tmp_path: Path) -> None:
    job = tmp_path / "job"
    (job / "sub").mkdir(parents=True)
    (job / "out.log").write_text("log\n")
    big = np.random.default_rng(1).bytes(3 * 1024 * 1024)
    (job / "sub" / "map.bin").write_bytes(big)
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (job / "link").symlink_to(secret)
    chunks = [c async for c in stream_tar_gz(job, "J", level=1)]
    assert len(chunks) > 1
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as tar:
        names = set(tar.getnames())
        assert names == {"J", "J/out.log", "J/sub", "J/sub/map.bin"}
        member = tar.extractfile("J/sub/map.bin")
        assert member is not None
        assert member.read() == big
        assert all(m.uname == "" and m.uid == 0 for m in tar.getmembers())


async def test_archive_holds_only_the_jobs_outputs(tmp_path: Path) -> None:
    job = tmp_path / "job"
    for name in (
        "sources.fits",
        ".cache/matplotlib/fontlist-v390.json",  # an app's HOME before HOME moved to tmp/
        ".config/matplotlib/matplotlibrc",
        "tmp/.astropy/config",  # HOME and TMPDIR now
        "tmp/scratch.bin",
        ".sources.csv.42.abcdef01.tmp",  # a derived catalogue being written
    ):
        (job / name).parent.mkdir(parents=True, exist_ok=True)
        (job / name).write_text("x")
    chunks = [c async for c in stream_tar_gz(job, "J", level=1)]
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as tar:
        assert set(tar.getnames()) == {"J", "J/sources.fits"}


async def test_archive_stops_when_the_reader_stops(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "noise.bin").write_bytes(np.random.default_rng(2).bytes(8 * 1024 * 1024))
    stream = stream_tar_gz(job, "J", level=0)
    first = await anext(stream)
    assert first
    await stream.aclose()  # must return: the writer thread notices and stops


async def test_upload_storage_commit_and_discard(tmp_path: Path) -> None:
    storage = UploadStorage(tmp_path)
    upload = await storage.begin("alice", FID)
    await upload.write(b"abc")
    await upload.write(b"def")
    digest = await upload.finish()
    assert digest == hashlib.sha256(b"abcdef").hexdigest()
    final = storage.path_of("alice", FID, "fits")
    await upload.commit(final)
    assert final.read_bytes() == b"abcdef"
    assert not upload.temp.exists()

    other = await storage.begin("alice", "0" * 32)
    await other.write(b"partial")
    await other.discard()
    assert sorted(p.name for p in (tmp_path / "alice").iterdir()) == [f"{FID}.fits"]


def test_storage_refuses_what_is_not_ours(tmp_path: Path) -> None:
    storage = UploadStorage(tmp_path)
    for owner, file_id, ext in [
        ("..", FID, "fits"),
        ("alice", "../../etc/passwd", "fits"),
        ("alice", FID, "fits/../x"),
        ("a/b", FID, "fits"),
    ]:
        with pytest.raises(ValueError, match=r"not a safe path component|not a stored file"):
            storage.path_of(owner, file_id, ext)
