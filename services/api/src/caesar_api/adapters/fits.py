"""FITS inspection of uploads (astropy; blocking, so callers run it in a thread).

An upload named ``.fits`` must really be a FITS image: the apps would otherwise fail
much later, on a runner, with an obscure error. The facts read here (shape, celestial
WCS, beam, frequency, unit) are stored with the file so the scheduler, the apps and the
user can see what was uploaded without opening it again. Only headers are read; the
data, possibly gigabytes, is never loaded: a plain image is sampled through a memory
map, a tile-compressed one (which may declare far more pixels than its file holds) is
limited by its declared size and sampled a few checked tiles at a time
(:mod:`.compressed`), so the work per upload is bounded whatever the file says.
"""

from __future__ import annotations

import asyncio
import os
import re
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from astropy import units
from astropy.io import fits
from astropy.wcs import WCS

from caesar_api.adapters.compressed import TileTable, declared_bytes, sample_tiles
from caesar_api.adapters.fits_errors import DecompressedTooLargeError, NotFitsError

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "FITS_SIGNATURE",
    "NOT_FITS_START",
    "DecompressedTooLargeError",
    "NotFitsError",
    "inspect_fits",
    "read_fits_facts",
]

DEFAULT_MAX_DECOMPRESSED_BYTES = 4 * 1024**3
FITS_SIGNATURE = b"SIMPLE  ="
NOT_FITS_START = "File is not a FITS file (it does not start with SIMPLE =)"
_AIPS_BEAM_RE = re.compile(
    r"BMAJ\s*=\s*([-+0-9.EeDd]+)\s+BMIN\s*=\s*([-+0-9.EeDd]+)\s+BPA\s*=\s*([-+0-9.EeDd]+)"
)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _image_hdu(hdul: fits.HDUList) -> tuple[int, Any]:
    for index, hdu in enumerate(hdul):
        if isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU) and (
            hdu.header.get("NAXIS", 0) > 0
        ):
            return index, hdu
    raise NotFitsError("FITS file contains no image (no HDU with NAXIS > 0)")


def _beam(header: fits.Header) -> dict[str, float] | None:
    bmaj, bmin, bpa = (_number(header.get(k)) for k in ("BMAJ", "BMIN", "BPA"))
    if bmaj is None or bmin is None:
        # AIPS writes the restoring beam only into HISTORY cards.
        for card in reversed(list(header.get("HISTORY", []))):
            match = _AIPS_BEAM_RE.search(str(card))
            if match:
                bmaj, bmin, bpa = (float(g.replace("D", "E")) for g in match.groups())
                break
    if bmaj is None or bmin is None:
        return None
    return {"bmaj_deg": bmaj, "bmin_deg": bmin, "bpa_deg": bpa if bpa is not None else 0.0}


def _frequency(header: fits.Header, naxis: int) -> tuple[float | None, str | None]:
    """Observed frequency (Hz) at the first pixel of a FREQ axis, else the rest frequency."""
    for i in range(1, naxis + 1):
        ctype = _text(header.get(f"CTYPE{i}")) or ""
        if not ctype.upper().startswith("FREQ"):
            continue
        crval = _number(header.get(f"CRVAL{i}"))
        if crval is None:
            break
        crpix = _number(header.get(f"CRPIX{i}")) or 0.0
        cdelt = _number(header.get(f"CDELT{i}"))
        value = crval + (1.0 - crpix) * (cdelt if cdelt is not None else 1.0)
        unit = _text(header.get(f"CUNIT{i}")) or "Hz"
        try:
            return float((value * units.Unit(unit)).to_value(units.Hz)), f"CTYPE{i}"
        except (ValueError, units.UnitsError):
            return None, None
    for key in ("RESTFRQ", "RESTFREQ"):
        rest = _number(header.get(key))
        if rest is not None:
            return rest, key
    return None, None


def _celestial(header: fits.Header) -> dict[str, Any] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header)
    except Exception:  # noqa: BLE001 - a broken WCS is a fact to record, not a crash
        return None
    if not wcs.has_celestial:
        return None
    celestial = wcs.celestial
    ctypes = [str(c) for c in celestial.wcs.ctype]
    projection = ctypes[0][5:8].strip("-") if len(ctypes[0]) >= 8 else ""
    return {
        "ctype": ctypes,
        "projection": projection or None,
        "radesys": _text(header.get("RADESYS") or header.get("RADECSYS")),
        "equinox": _number(header.get("EQUINOX") or header.get("EPOCH")),
    }


_SAMPLE_ROWS = 256
_SAMPLE_PIXELS = 1 << 18
Pixels = npt.NDArray[np.float32]


def _summary(values: Pixels, step: int) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if finite.size else None
    hi = float(finite.max()) if finite.size else None
    return {
        "sampled_every": step,
        "finite_fraction": round(finite.size / values.size, 6) if values.size else 0.0,
        "all_blank": finite.size == 0,
        "constant": finite.size > 0 and lo == hi,
        "min": lo,
        "max": hi,
    }


def _pixel_summary(hdu: Any, shape: list[int]) -> dict[str, Any] | None:
    """Cheap facts about the first 2-D plane: is it all blank, or constant?

    Finders crash or waste a slot on such images (PyBDSF: "All pixels in the image are
    blanked", "unphysical rms"; Aegean silently finds nothing), so the api refuses them at
    submit. Only a sample is read, whatever the image size: at most ``_SAMPLE_ROWS``
    evenly spaced rows of the memory-mapped data, thinned to about
    ``_SAMPLE_PIXELS`` values in float32. Reading the whole plane cost an upload of a
    64 MiB image 270 MiB of api memory and most of its time.
    """
    if len(shape) < 2:
        return None
    nx, ny = shape[0], shape[1]
    row_step = max(1, int(np.ceil(ny / _SAMPLE_ROWS)))
    rows = int(np.ceil(ny / row_step))
    col_step = max(1, int(np.ceil(nx * rows / _SAMPLE_PIXELS)))
    step = max(row_step, col_step)
    index = (0,) * (len(shape) - 2) + (slice(None, None, row_step), slice(None, None, col_step))
    try:
        # hdu.data is a memory map (see inspect_fits): the strided view reads only the
        # pages holding the sampled rows.
        plane = np.asarray(hdu.data[index], dtype=np.float32)
    except Exception:  # noqa: BLE001 - unreadable data is reported as unknown, not a crash
        return None
    return _summary(plane, step)


def _compressed_pixel_summary(
    hdu: Any, shape: list[int], table: TileTable, handle: BinaryIO
) -> dict[str, Any] | None:
    """The same facts from a few whole tiles of a compressed image (never all of it).

    A tile that could make astropy work beyond its size refuses the file
    (:class:`NotFitsError`); tiles too large to read within the bound, or that astropy
    cannot read (a scaled image through a memory map), leave the pixels unknown
    (``None``), which refuses nothing at submit.
    """
    if len(shape) < 2:
        return None
    try:
        values = sample_tiles(hdu, table, handle, _SAMPLE_PIXELS)
    except NotFitsError:
        raise
    except Exception:  # noqa: BLE001 - as for plain images: unreadable data is unknown, not a crash
        return None
    if values is None or not values.size:
        return None
    plane = shape[0] * shape[1]
    return _summary(values, max(1, plane // values.size))


def _warnings(facts: dict[str, Any]) -> list[str]:
    """Things a finder may trip over, shown to the user with the file's metadata."""
    notes = []
    if facts["celestial"] is None:
        notes.append("no celestial WCS: source finders need RA/Dec axes")
    elif facts["celestial"]["projection"] not in {"SIN", "TAN"}:
        notes.append(f"projection {facts['celestial']['projection']}: Aegean assumes SIN/TAN for its PSF")
    if facts["beam"] is None:
        notes.append("no beam (BMAJ/BMIN/BPA): give a beam parameter to the finder")
    if facts["frequency_hz"] is None:
        notes.append("no frequency (FREQ axis, RESTFRQ, RESTFREQ)")
    if facts["bunit"] is None:
        notes.append("no BUNIT: fluxes are assumed to be Jy/beam")
    elif facts["bunit"].upper().replace(" ", "") not in {"JY/BEAM", "JY/BM"}:
        notes.append(f"BUNIT is {facts['bunit']}, not JY/BEAM: fluxes are taken as Jy/beam")
    if len(facts["shape"]) - len(facts["degenerate_axes"]) > 2:
        notes.append("more than 2 non-degenerate axes: only the first plane is searched")
    pixels = facts.get("pixels")
    if pixels and pixels["all_blank"]:
        notes.append("all pixels are blank (NaN)")
    elif pixels and pixels["constant"]:
        notes.append("the image is constant")
    return notes


def inspect_fits(
    path: Path, *, max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES
) -> dict[str, Any]:
    """Check that ``path`` is a complete FITS image and return its header facts.

    ``shape`` is in FITS axis order (``NAXIS1`` first). Raises :class:`NotFitsError`, or
    :class:`DecompressedTooLargeError` for a tile-compressed image that declares more
    than ``max_decompressed_bytes`` (decided from its header, before any tile is read).
    """
    with path.open("rb") as handle:
        if handle.read(len(FITS_SIGNATURE)) != FITS_SIGNATURE:
            raise NotFitsError(NOT_FITS_START)
        size = os.fstat(handle.fileno()).st_size
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
                    return _facts(hdul, handle, size, max_decompressed_bytes)
        except (NotFitsError, DecompressedTooLargeError):
            raise
        except Exception as exc:
            raise NotFitsError(f"File is not a valid FITS file ({type(exc).__name__})") from exc


def _facts(hdul: fits.HDUList, handle: BinaryIO, size: int, max_decompressed_bytes: int) -> dict[str, Any]:
    index, hdu = _image_hdu(hdul)
    header = hdu.header
    naxis = int(header["NAXIS"])
    shape = [int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
    if isinstance(hdu, fits.CompImageHDU):
        declared = declared_bytes(header)
        if declared > max_decompressed_bytes:
            raise DecompressedTooLargeError(declared, max_decompressed_bytes)
        info = hdu.fileinfo()
        table = TileTable.read(handle, info["hdrLoc"], info["datLoc"], size)
        pixels = _compressed_pixel_summary(hdu, shape, table, handle)
    else:
        end = hdu.fileinfo()["datLoc"] + hdu.size
        if end > size:
            raise NotFitsError(f"FITS file is truncated: the image needs {end} bytes, the file has {size}")
        pixels = _pixel_summary(hdu, shape)
    frequency, frequency_source = _frequency(header, naxis)
    facts = {
        "hdu": index,
        "naxis": naxis,
        "shape": shape,
        "bitpix": int(header["BITPIX"]),
        "ctypes": [_text(header.get(f"CTYPE{i}")) for i in range(1, naxis + 1)],
        "celestial": _celestial(header),
        "beam": _beam(header),
        "frequency_hz": frequency,
        "frequency_from": frequency_source,
        "bunit": _text(header.get("BUNIT")),
        "degenerate_axes": [i + 1 for i, n in enumerate(shape) if n == 1],
        "pixels": pixels,
    }
    facts["warnings"] = _warnings(facts)
    return facts


async def read_fits_facts(
    path: Path, *, max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES
) -> dict[str, Any]:
    """:func:`inspect_fits` off the event loop."""
    return await asyncio.to_thread(inspect_fits, path, max_decompressed_bytes=max_decompressed_bytes)
