"""The one catalogue file the finalize step writes: the canonical FITS binary table.

Why one file, and why FITS. Writing VOTable, FITS, CSV, JSON and DS9 for every job cost
most of the finalize step (the VOTable and JSON writers walk the rows in Python) for files
most jobs never have downloaded. So finalize writes one canonical catalogue and the api
derives the other formats from it on first request, caching them next to it. The
canonical format must be fast to write and to read and must lose nothing the derived
formats need:

* FITS stores the numbers in binary, so float64 positions and fluxes survive bit for bit
  (a text format must print 17 digits and parse them back: ECSV wrote and read a
  2,400-row catalogue 1.5x and 2.5x slower here);
* astropy writes each column's unit (``TUNITn``) and serialises its description and
  UCD (column ``meta``) into the header, and reads all of it back into the same
  :class:`~astropy.table.Table`, which is everything the VOTable, JSON and DS9
  writers use;
* it is itself one of the five formats served (``?format=fits``), so the most common
  binary download needs no derivation, and every astronomer's tool opens it.

The file is written to a hidden temporary name, flushed to disk and renamed, so neither
the api nor a client ever sees half a catalogue.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from astropy.table import Table

__all__ = ["CANONICAL_FORMAT", "DERIVED_FORMATS", "FORMATS", "write_canonical"]

FORMATS: Final[dict[str, str]] = {
    "votable": "vot",
    "fits": "fits",
    "csv": "csv",
    "json": "json",
    "ds9": "reg",
}
"""Every format the api serves (as in ``?format=``) -> file extension."""

CANONICAL_FORMAT: Final = "fits"
"""The format finalize writes; the api derives the others from it."""

DERIVED_FORMATS: Final[tuple[str, ...]] = tuple(f for f in FORMATS if f != CANONICAL_FORMAT)
"""Formats made by the api on first request, cached as ``<stem>.<ext>`` next to it."""


def write_canonical(table: Table, directory: Path, stem: str) -> str:
    """Write ``table`` as ``<stem>.fits`` in ``directory`` atomically; return the file name.

    The table's ``finder`` and ``catalog`` become the header keywords ``FINDER`` and
    ``CATALOG``; other table metadata (e.g. the native file name) stays in the record.
    """
    final = Path(directory) / f"{stem}.{FORMATS[CANONICAL_FORMAT]}"
    tmp = final.with_name(f".{final.name}.tmp")
    out = table.copy(copy_data=False)
    out.meta = {"FINDER": str(table.meta.get("finder", "")), "CATALOG": str(table.meta.get("catalog", ""))}
    out.write(tmp, format="fits", overwrite=True)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final.name
