"""Tile-compressed FITS files built byte by byte, for the upload's bounded-work tests.

A hostile upload does not need astropy to exist: every row of a compressed image's tile
table may point at the same few compressed bytes, so a file of a few kilobytes declares
gigabytes of pixels. Writing such a file with astropy would need the whole image in the
test's memory; building the bytes directly needs none, and shows exactly what the api
has to survive.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Mapping

import numpy as np
from astropy.io import fits

BLOCK = 2880


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def compressed_image(
    nx: int,
    ny: int,
    *,
    tile_rows: int = 16,
    value: int = 7,
    tile_payload: bytes | None = None,
    header: Mapping[str, object] | None = None,
) -> bytes:
    """A GZIP_1, 32-bit integer image of ``nx`` by ``ny`` pixels, every pixel ``value``.

    Tiles are ``tile_rows`` full rows; all of them share one compressed blob in the heap
    (``tile_payload`` replaces it, e.g. a gzip stream far larger than a tile). ``header``
    adds image keywords (WCS, beam, BUNIT) as a compressed image carries them.
    """
    tile_pixels = nx * tile_rows
    blob = tile_payload
    if blob is None:
        blob = gzip.compress(np.full(tile_pixels, value, dtype=">i4").tobytes(), compresslevel=9)
    n_tiles = math.ceil(ny / tile_rows)
    table = fits.Header()
    table["XTENSION"] = "BINTABLE"
    table["BITPIX"] = 8
    table["NAXIS"] = 2
    table["NAXIS1"] = 8
    table["NAXIS2"] = n_tiles
    table["PCOUNT"] = len(blob)
    table["GCOUNT"] = 1
    table["TFIELDS"] = 1
    table["TTYPE1"] = "COMPRESSED_DATA"
    table["TFORM1"] = f"1PB({len(blob)})"
    table["ZIMAGE"] = True
    table["ZTENSION"] = "IMAGE"
    table["ZBITPIX"] = 32
    table["ZNAXIS"] = 2
    table["ZNAXIS1"] = nx
    table["ZNAXIS2"] = ny
    table["ZPCOUNT"] = 0
    table["ZGCOUNT"] = 1
    table["ZTILE1"] = nx
    table["ZTILE2"] = tile_rows
    table["ZCMPTYPE"] = "GZIP_1"
    for key, item in (header or {}).items():
        table[key] = item
    rows = np.zeros((n_tiles, 2), dtype=">i4")
    rows[:, 0] = len(blob)  # every tile: the whole blob, at heap offset 0
    primary = fits.PrimaryHDU().header
    primary["EXTEND"] = True
    headers = str(primary.tostring()) + str(table.tostring())
    return headers.encode("ascii") + _padded(rows.tobytes() + blob)


def radio_keywords() -> dict[str, object]:
    """A celestial WCS, a beam and a unit, so a compressed image looks like a real map."""
    return {
        "CTYPE1": "RA---SIN",
        "CTYPE2": "DEC--SIN",
        "CRVAL1": 266.4,
        "CRVAL2": -28.9,
        "CRPIX1": 1.0,
        "CRPIX2": 1.0,
        "CDELT1": -0.001,
        "CDELT2": 0.001,
        "BMAJ": 0.002,
        "BMIN": 0.0015,
        "BPA": 30.0,
        "BUNIT": "JY/BEAM",
    }
