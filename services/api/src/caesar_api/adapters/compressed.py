"""Bounded reads of tile-compressed FITS images, for the upload check.

A tile-compressed image is a binary table: one row per tile, each row pointing at the
tile's compressed bytes in the table's heap. The table can be tiny while the image it
declares is huge (every row may point at the same few bytes: a 17 KB upload declared a
1 GiB image, and decompressing it cost the api 1 GB and 4 s), and one gzip tile can
expand far beyond its tile (astropy inflates a tile whole, before it checks the size).

So the check never decompresses the image. The caller compares the declared size with
its limit from the header alone; this module reads the tile table itself (file offsets,
descriptors, bounds), checks the few tiles it samples before astropy touches them (their
bytes lie inside the file, are no more than a tile could need, and a gzip stream stops
at the tile's size), and only then has astropy's ``section`` decompress those tiles.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from caesar_api.adapters.fits_errors import NotFitsError

# At most this many pixels (whole tiles) are decompressed per upload: 16 MiB of float32.
SAMPLE_TILE_PIXELS = 1 << 22
# At most this many tiles are sampled; they are spread evenly over the first plane.
MAX_SAMPLED_TILES = 64
# astropy copies a column of the tile table per read: beyond this the pixels are not sampled.
MAX_TABLE_BYTES = 32 * 1024 * 1024
# A tile's compressed bytes beyond this per pixel (plus a small header) cannot be honest.
MAX_BYTES_PER_PIXEL = 8
TILE_SLACK_BYTES = 4096
_READ_BYTES = 1 << 20

_DATA_COLUMNS = ("COMPRESSED_DATA", "GZIP_COMPRESSED_DATA", "UNCOMPRESSED_DATA")
_GZIP_CODECS = frozenset({"GZIP_1", "GZIP_2"})
_TFORM_RE = re.compile(r"^\s*(\d*)([LXBIJKAEDCMPQ])(.*)$")
_FIELD_BYTES = {"L": 1, "B": 1, "I": 2, "J": 4, "K": 8, "A": 1, "E": 4, "D": 8, "C": 8, "M": 16}
_HEAP_ELEMENT_BYTES = {"B": 1, "I": 2, "J": 4, "K": 8, "E": 4, "D": 8}


def declared_bytes(header: fits.Header) -> int:
    """Bytes of the image once decompressed, from its header alone (NAXISn and BITPIX)."""
    naxis = int(header["NAXIS"])
    pixels = math.prod(int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1))
    return pixels * abs(int(header["BITPIX"])) // 8


@dataclass(frozen=True)
class _HeapColumn:
    """A variable-length column of the tile table: where its descriptor sits in a row."""

    name: str
    offset: int
    descriptor: np.dtype[Any]
    element_bytes: int


def _columns(header: fits.Header, row_bytes: int) -> tuple[_HeapColumn, ...]:
    """The data columns of the table, from its TFORMs (sizes checked against NAXIS1)."""
    offset = 0
    found: list[_HeapColumn] = []
    for i in range(1, int(header.get("TFIELDS", 0)) + 1):
        match = _TFORM_RE.match(str(header.get(f"TFORM{i}", "")))
        if match is None:
            raise NotFitsError(f"compressed image: column {i} has no valid TFORM")
        repeat = int(match.group(1) or 1)
        code = match.group(2)
        name = str(header.get(f"TTYPE{i}", "")).strip().upper()
        if code in "PQ":
            size = repeat * (8 if code == "P" else 16)
            element = _HEAP_ELEMENT_BYTES.get(match.group(3).strip()[:1])
            if name in _DATA_COLUMNS:
                if element is None or repeat != 1:
                    raise NotFitsError(f"compressed image: column {name} has an unusable TFORM")
                descriptor = np.dtype(">i4" if code == "P" else ">i8")
                found.append(_HeapColumn(name, offset, descriptor, element))
        elif code == "X":
            size = math.ceil(repeat / 8)
        else:
            size = repeat * _FIELD_BYTES[code]
        offset += size
    if offset != row_bytes:
        raise NotFitsError(f"compressed image: columns take {offset} bytes, rows have {row_bytes}")
    if not any(c.name == "COMPRESSED_DATA" for c in found):
        raise NotFitsError("compressed image has no COMPRESSED_DATA column")
    return tuple(found)


@dataclass(frozen=True)
class TileTable:
    """Where a compressed image's tiles are in the file, read from its table header."""

    rows_at: int
    row_bytes: int
    rows: int
    heap_at: int
    heap_bytes: int
    codec: str
    columns: tuple[_HeapColumn, ...]

    @classmethod
    def read(cls, handle: BinaryIO, header_at: int, data_at: int, file_size: int) -> TileTable:
        """The table of the HDU whose header starts at ``header_at``; refuses a truncated one."""
        handle.seek(header_at)
        header = fits.Header.fromfile(handle)
        row_bytes, rows = int(header["NAXIS1"]), int(header["NAXIS2"])
        pcount = int(header.get("PCOUNT", 0))
        table_bytes = row_bytes * rows
        theap = int(header.get("THEAP", table_bytes))
        if min(row_bytes, rows, pcount) < 0 or not table_bytes <= theap <= table_bytes + pcount:
            raise NotFitsError("compressed image: its table's sizes are inconsistent")
        end = data_at + table_bytes + pcount
        if end > file_size:
            raise NotFitsError(
                f"FITS file is truncated: the image needs {end} bytes, the file has {file_size}"
            )
        return cls(
            rows_at=data_at,
            row_bytes=row_bytes,
            rows=rows,
            heap_at=data_at + theap,
            heap_bytes=table_bytes + pcount - theap,
            codec=str(header.get("ZCMPTYPE", "")).strip().upper(),
            columns=_columns(header, row_bytes),
        )

    def check_tile(self, handle: BinaryIO, row: int, tile_pixels: int) -> None:
        """Refuse a tile whose bytes astropy must not decompress.

        Its compressed bytes must lie inside the heap and be no more than a tile of
        ``tile_pixels`` could need, and a gzip stream must stop within the tile's size:
        astropy inflates a gzip tile whole before it looks at the size.
        """
        if not 0 <= row < self.rows:
            raise NotFitsError(f"compressed image lacks tile {row + 1}")
        most = tile_pixels * MAX_BYTES_PER_PIXEL
        handle.seek(self.rows_at + row * self.row_bytes)
        raw = handle.read(self.row_bytes)
        if len(raw) != self.row_bytes:
            raise NotFitsError("FITS file is truncated inside the tile table")
        for column in self.columns:
            count, offset = (int(v) for v in np.frombuffer(raw, column.descriptor, 2, column.offset))
            size = count * column.element_bytes
            if count < 0 or offset < 0 or offset + size > self.heap_bytes:
                raise NotFitsError(f"compressed image: tile {row + 1} points outside the file")
            if size > most + TILE_SLACK_BYTES:
                raise NotFitsError(
                    f"compressed image: tile {row + 1} holds {size} bytes, more than its "
                    f"{tile_pixels} pixels could need"
                )
            gzip = column.name == "GZIP_COMPRESSED_DATA" or (
                column.name == "COMPRESSED_DATA" and self.codec in _GZIP_CODECS
            )
            if gzip and size and gzip_exceeds(self._bytes(handle, offset, size), most):
                raise NotFitsError(
                    f"compressed image: tile {row + 1} expands beyond its {tile_pixels} pixels"
                )

    def _bytes(self, handle: BinaryIO, offset: int, size: int) -> Iterator[bytes]:
        handle.seek(self.heap_at + offset)
        while size > 0:
            chunk = handle.read(min(size, _READ_BYTES))
            if not chunk:
                raise NotFitsError("FITS file is truncated inside the tile heap")
            size -= len(chunk)
            yield chunk


def gzip_exceeds(chunks: Iterator[bytes], limit: int) -> bool:
    """Whether a gzip stream inflates to more than ``limit`` bytes, holding at most that much.

    Reads member after member as :func:`gzip.decompress` does (zero padding between
    members is skipped); a stream that is not gzip raises :class:`NotFitsError`.
    """
    produced = 0
    inflater = zlib.decompressobj(wbits=31)
    between_members = False
    try:
        for chunk in chunks:
            data = chunk
            while data:
                if between_members:
                    data = data.lstrip(b"\0")
                    if not data:
                        break
                    between_members = False
                out = inflater.decompress(data, limit - produced + 1)
                produced += len(out)
                if produced > limit:
                    return True
                if inflater.eof:
                    data = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=31)
                    between_members = True
                else:
                    data = inflater.unconsumed_tail
    except zlib.error as exc:
        raise NotFitsError("compressed image: a tile is not valid gzip") from exc
    return False


def sample_tiles(
    hdu: Any, table: TileTable, handle: BinaryIO, budget_values: int
) -> npt.NDArray[np.float32] | None:
    """Pixels of a few whole tiles of the first plane, spread over it, thinned to ``budget_values``.

    ``None`` when no tile can be read within the bounds (tiles larger than
    :data:`SAMPLE_TILE_PIXELS`, a huge tile table): the pixels are then unknown, which
    refuses nothing. Every tile is checked (:meth:`TileTable.check_tile`) before astropy
    decompresses it, and only its own tile.
    """
    shape = tuple(int(n) for n in hdu.shape)  # numpy order: the first FITS axis last
    tile_shape = tuple(int(t) for t in hdu.tile_shape)
    if len(shape) < 2 or len(tile_shape) != len(shape) or min(tile_shape) < 1:
        return None
    n_tiles = [math.ceil(n / t) for n, t in zip(shape, tile_shape, strict=True)]
    if table.rows < math.prod(n_tiles):
        raise NotFitsError(f"compressed image has {table.rows} tiles, its size needs {math.prod(n_tiles)}")
    tile_pixels = math.prod(tile_shape)
    if tile_pixels > SAMPLE_TILE_PIXELS or table.rows * table.row_bytes > MAX_TABLE_BYTES:
        return None
    tiles_y, tiles_x = n_tiles[-2], n_tiles[-1]
    wanted = min(tiles_y * tiles_x, SAMPLE_TILE_PIXELS // tile_pixels, MAX_SAMPLED_TILES)
    picked = np.unique(np.linspace(0, tiles_y * tiles_x - 1, wanted).round().astype(int))
    keep_every = max(1, math.ceil(len(picked) * tile_pixels / budget_values))
    parts: list[npt.NDArray[np.float32]] = []
    for flat in picked:
        # The first plane's tiles are the table's first rows, the first axis fastest.
        table.check_tile(handle, int(flat), tile_pixels)
        ty, tx = divmod(int(flat), tiles_x)
        rows = slice(ty * tile_shape[-2], min((ty + 1) * tile_shape[-2], shape[-2]))
        cols = slice(tx * tile_shape[-1], min((tx + 1) * tile_shape[-1], shape[-1]))
        tile = hdu.section[(0,) * (len(shape) - 2) + (rows, cols)]
        parts.append(np.asarray(tile, dtype=np.float32).ravel()[::keep_every])
    return np.concatenate(parts)
