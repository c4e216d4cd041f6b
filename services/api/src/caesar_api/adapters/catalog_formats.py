"""The catalogue formats the api derives from a job's canonical FITS catalogue.

The finalize step writes one harmonised catalogue per kind, a FITS binary table whose
header carries every column's unit, description and UCD (see the runner's
``caesar_runner.catalogs.writers`` for why FITS). Clients ask for VOTable (TOPCAT,
Aladin; units and UCDs per field), CSV (spreadsheets), JSON (the v1 ``/sources`` route
and web clients; NaN as ``null``) and DS9 regions (ellipses at the FWHM in fk5). Those
are made here, on the first request for them, from the canonical table: the service only
pays for the formats somebody downloads. Pure functions of a table (no paths, no
caching): :mod:`caesar_api.adapters.job_files` decides where the bytes go.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
from astropy.table import Table

__all__ = ["DERIVERS", "catalog_to_json", "read_canonical", "render"]


def read_canonical(path: Path) -> Table:
    """The harmonised table as the runner wrote it: units, descriptions, UCDs, finder.

    FITS has no unicode columns (PyBDSF's ``S_Code`` comes back as bytes) and upper-case
    header keywords; both are turned back into what the runner's table held.
    """
    table = Table.read(path, format="fits")
    table.convert_bytestring_to_unicode()
    meta = {str(k).lower(): v for k, v in table.meta.items()}
    table.meta = {"finder": meta.get("finder", ""), "catalog": meta.get("catalog", "")}
    return table


def _votable(table: Table) -> bytes:
    from astropy.io.votable import from_table

    votable = from_table(table)
    resource_table = votable.get_first_table()
    for fld in resource_table.fields:
        column = table[fld.name]
        ucd = column.meta.get("ucd")
        if ucd:
            fld.ucd = ucd
        if column.description:
            fld.description = column.description
    resource_table.name = f"{table.meta.get('finder') or 'finder'}_{table.meta.get('catalog') or 'sources'}"
    out = io.BytesIO()
    votable.to_xml(out)
    return out.getvalue()


def _csv(table: Table) -> bytes:
    out = table.copy(copy_data=False)
    out.meta = {}
    text = io.StringIO()
    out.write(text, format="ascii.csv")
    return text.getvalue().encode()


def _json_values(column: Any) -> list[Any]:
    """A column as JSON values: numpy scalars as Python ones, non-finite floats as ``None``."""
    values = np.asarray(column)
    if values.dtype.kind == "f":
        return [v if math.isfinite(v) else None for v in values.tolist()]
    if values.dtype.kind == "S":
        return [v.decode() for v in values.tolist()]
    return list(values.tolist())


def catalog_to_json(table: Table) -> dict[str, Any]:
    """``{"finder", "catalog", "n_sources", "columns": [{name, unit, ucd, description}], "sources": [...]}``.

    Rows are objects keyed by column name; NaN becomes ``null`` (JSON has no NaN). Built
    column by column (a row loop over an astropy table costs a second at 2,000 rows).
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
    values = [_json_values(table[name]) for name in table.colnames]
    rows = [dict(zip(table.colnames, row, strict=True)) for row in zip(*values, strict=True)]
    return {
        "finder": table.meta.get("finder"),
        "catalog": table.meta.get("catalog"),
        "n_sources": len(table),
        "columns": columns,
        "sources": rows,
    }


def _json(table: Table) -> bytes:
    return json.dumps(catalog_to_json(table), allow_nan=False).encode()


def _ds9(table: Table) -> bytes:
    # DS9 measures an fk5 ellipse's angle counter-clockwise from the RA axis (west on a
    # north-up image), the catalogue's PA from north through east: angle = PA + 90.
    lines = [
        f"# Region file format: DS9 version 4.1 (caesar-rest, finder {table.meta.get('finder', '')})",
        'global color=green dashlist=8 3 width=1 font="helvetica 10 normal roman" select=1',
        "fk5",
    ]
    columns = ("source_id", "ra", "dec", "maj", "min", "pa")
    for sid, ra, dec, maj, mn, pa in zip(*(np.asarray(table[c]).tolist() for c in columns), strict=True):
        if not (math.isfinite(ra) and math.isfinite(dec)):
            continue
        label = f"# text={{{int(sid)}}}"
        if math.isfinite(maj) and math.isfinite(mn) and maj > 0 and mn > 0:
            angle = (pa if math.isfinite(pa) else 0.0) + 90.0
            lines.append(f'ellipse({ra:.7f},{dec:.7f},{maj / 2:.3f}",{mn / 2:.3f}",{angle:.3f}) {label}')
        else:
            lines.append(f"point({ra:.7f},{dec:.7f}) {label}")
    return ("\n".join(lines) + "\n").encode()


DERIVERS: Final[dict[str, Callable[[Table], bytes]]] = {
    "votable": _votable,
    "csv": _csv,
    "json": _json,
    "ds9": _ds9,
}
"""``?format=`` -> the function that renders the canonical table in it."""


def render(canonical: Path, fmt: str) -> bytes:
    """The bytes of the catalogue in ``canonical`` as ``fmt`` (``KeyError`` for unknown formats)."""
    derive = DERIVERS[fmt]
    return derive(read_canonical(canonical))
