"""Write a harmonised catalogue in the formats astronomers' tools open.

VOTable (TOPCAT, Aladin; units and UCDs declared per field), FITS binary table (TUNITn),
CSV (spreadsheets; units in the JSON and VOTable only), JSON (the v1 ``/sources`` route and
web clients; NaN written as ``null``) and a DS9 region file (ellipses at the FWHM in fk5).
Each writer writes to a temporary name and renames, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
from astropy.io.votable import from_table
from astropy.table import Table

__all__ = ["FORMATS", "MEDIA_TYPES", "catalog_to_json", "write_catalog"]

FORMATS: Final[dict[str, str]] = {
    "votable": "vot",
    "fits": "fits",
    "csv": "csv",
    "json": "json",
    "ds9": "reg",
}
"""Format name (as in ``?format=``) -> file extension."""

MEDIA_TYPES: Final[dict[str, str]] = {
    "votable": "application/x-votable+xml",
    "fits": "application/fits",
    "csv": "text/csv",
    "json": "application/json",
    "ds9": "text/plain",
}


def _replace(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)


def _write_votable(table: Table, path: Path) -> None:
    votable = from_table(table)
    resource_table = votable.get_first_table()
    for fld in resource_table.fields:
        column = table[fld.name]
        ucd = column.meta.get("ucd")
        if ucd:
            fld.ucd = ucd
        if column.description:
            fld.description = column.description
    resource_table.name = f"{table.meta.get('finder', 'finder')}_{table.meta.get('catalog', 'sources')}"
    votable.to_xml(str(path))


def _write_fits(table: Table, path: Path) -> None:
    out = table.copy(copy_data=False)
    out.meta = {"FINDER": str(table.meta.get("finder", "")), "CATALOG": str(table.meta.get("catalog", ""))}
    out.write(path, format="fits", overwrite=True)


def _write_csv(table: Table, path: Path) -> None:
    out = table.copy(copy_data=False)
    out.meta = {}
    out.write(path, format="ascii.csv", overwrite=True)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.decode()
    return value


def catalog_to_json(table: Table) -> dict[str, Any]:
    """``{"finder", "catalog", "columns": [{name, unit, ucd, description}], "sources": [...]}``.

    Rows are objects keyed by column name; NaN becomes ``null`` (JSON has no NaN).
    """
    columns = [
        {
            "name": name,
            "unit": None if table[name].unit is None else str(table[name].unit),
            "ucd": table[name].meta.get("ucd"),
            "description": table[name].description,
        }
        for name in table.colnames
    ]
    rows = [{name: _plain(row[name]) for name in table.colnames} for row in table]
    return {
        "finder": table.meta.get("finder"),
        "catalog": table.meta.get("catalog"),
        "n_sources": len(table),
        "columns": columns,
        "sources": rows,
    }


def _write_json(table: Table, path: Path) -> None:
    path.write_text(json.dumps(catalog_to_json(table), allow_nan=False))


def _write_ds9(table: Table, path: Path) -> None:
    # DS9 measures an fk5 ellipse's angle counter-clockwise from the RA axis (west on a
    # north-up image), the catalogue's PA from north through east: angle = PA + 90.
    lines = [
        f"# Region file format: DS9 version 4.1 (caesar-rest, finder {table.meta.get('finder', '')})",
        'global color=green dashlist=8 3 width=1 font="helvetica 10 normal roman" select=1',
        "fk5",
    ]
    for row in table:
        ra, dec = float(row["ra"]), float(row["dec"])
        maj, mn, pa = float(row["maj"]), float(row["min"]), float(row["pa"])
        if not (math.isfinite(ra) and math.isfinite(dec)):
            continue
        label = f"# text={{{int(row['source_id'])}}}"
        if math.isfinite(maj) and math.isfinite(mn) and maj > 0 and mn > 0:
            angle = (pa if math.isfinite(pa) else 0.0) + 90.0
            lines.append(f'ellipse({ra:.7f},{dec:.7f},{maj / 2:.3f}",{mn / 2:.3f}",{angle:.3f}) {label}')
        else:
            lines.append(f"point({ra:.7f},{dec:.7f}) {label}")
    path.write_text("\n".join(lines) + "\n")


_WRITERS: Final[dict[str, Callable[[Table, Path], None]]] = {
    "votable": _write_votable,
    "fits": _write_fits,
    "csv": _write_csv,
    "json": _write_json,
    "ds9": _write_ds9,
}


def write_catalog(table: Table, directory: Path, stem: str) -> dict[str, str]:
    """Write ``table`` as ``<stem>.{vot,fits,csv,json,reg}`` in ``directory``.

    Returns
    -------
    dict
        Format name -> file name written.
    """
    written: dict[str, str] = {}
    for fmt, ext in FORMATS.items():
        final = Path(directory) / f"{stem}.{ext}"
        tmp = final.with_name(f".{final.name}.tmp")
        _WRITERS[fmt](table, tmp)
        _replace(tmp, final)
        written[fmt] = final.name
    return written
