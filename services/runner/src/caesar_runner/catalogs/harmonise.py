"""Each finder's native catalogue -> one table with the same core columns.

Clients compare finders and feed catalogues to TOPCAT, DS9 and astropy scripts; they
should not have to learn three column dialects (Aegean's ``int_flux`` in Jy with
sizes in arcsec, PyBDSF's ``Total_flux`` with sizes in degrees, sep's pixel moments).
The harmonised table has :data:`CORE_COLUMNS` (units and UCDs declared, so VOTable and
FITS writers carry them) followed by the finder's extras, prefixed with the app name.

Conventions: positions and PA in degrees (PA east of north; ``ra`` in [0, 360) and ``dec``
in [-90, 90] whatever range the finder used, see :mod:`.coords`), position errors and sizes
(FWHM) in arcsec, peak flux and rms in Jy/beam, integrated flux in Jy. Missing values
(an error the finder did not compute) are NaN, never the finders' ``-1`` sentinels.
``source_id`` is 1-based and unique in the table; ``island_id`` groups components that
share an island; ``component_id`` counts components within a source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from astropy.table import Column, Table

from caesar_runner.catalogs.coords import normalise_radec

__all__ = [
    "CATALOG_KINDS",
    "CORE_COLUMNS",
    "NATIVE_FILES",
    "ColumnSpec",
    "empty_catalog",
    "native_files",
    "read_native",
]


@dataclass(frozen=True)
class ColumnSpec:
    """One core column: name, numpy dtype, unit, IVOA UCD and description."""

    name: str
    dtype: str
    unit: str | None
    ucd: str
    description: str


CORE_COLUMNS: Final[tuple[ColumnSpec, ...]] = (
    ColumnSpec(
        "source_id", "i8", None, "meta.id;meta.main", "Source number, 1-based, unique in the catalogue"
    ),
    ColumnSpec("island_id", "i8", None, "meta.id.parent", "Island the source belongs to"),
    ColumnSpec("component_id", "i8", None, "meta.id.part", "Component number within its source or island"),
    ColumnSpec("ra", "f8", "deg", "pos.eq.ra;meta.main", "Right ascension (ICRS/FK5 J2000)"),
    ColumnSpec("dec", "f8", "deg", "pos.eq.dec;meta.main", "Declination (ICRS/FK5 J2000)"),
    ColumnSpec("err_ra", "f8", "arcsec", "stat.error;pos.eq.ra", "Uncertainty of ra (on the sky)"),
    ColumnSpec("err_dec", "f8", "arcsec", "stat.error;pos.eq.dec", "Uncertainty of dec"),
    ColumnSpec("peak_flux", "f8", "Jy/beam", "phot.flux.density;stat.max", "Peak surface brightness"),
    ColumnSpec(
        "err_peak_flux", "f8", "Jy/beam", "stat.error;phot.flux.density;stat.max", "Uncertainty of peak_flux"
    ),
    ColumnSpec("int_flux", "f8", "Jy", "phot.flux.density", "Integrated flux density"),
    ColumnSpec("err_int_flux", "f8", "Jy", "stat.error;phot.flux.density", "Uncertainty of int_flux"),
    ColumnSpec("maj", "f8", "arcsec", "phys.angSize.smajAxis", "Major axis FWHM (not deconvolved)"),
    ColumnSpec("min", "f8", "arcsec", "phys.angSize.sminAxis", "Minor axis FWHM (not deconvolved)"),
    ColumnSpec("pa", "f8", "deg", "pos.posAng", "Position angle of the major axis, east of north"),
    ColumnSpec("local_rms", "f8", "Jy/beam", "stat.stdev;phot.flux.density", "Local noise at the source"),
    ColumnSpec("snr", "f8", None, "stat.snr", "peak_flux / local_rms"),
    ColumnSpec("flags", "i4", None, "meta.code.qual", "Finder quality flags (0 = clean)"),
)
_CORE_NAMES: Final = tuple(c.name for c in CORE_COLUMNS)

CATALOG_KINDS: Final = ("sources", "components")
"""``sources``: one row per source (PyBDSF srl); ``components``: one row per fitted
Gaussian (PyBDSF gaul). For Aegean and sfind both are the same table."""

NATIVE_FILES: Final[dict[str, dict[str, str]]] = {
    "aegean": {"sources": "catalog_comp.vot", "components": "catalog_comp.vot"},
    "bdsf": {"sources": "catalog.srl.fits", "components": "catalog.gaul.fits"},
    "sfind": {"sources": "sfind_catalog.fits", "components": "sfind_catalog.fits"},
}
"""The native file each finder writes in the job directory (absent = no source found)."""


def native_files(app: str) -> dict[str, str]:
    """Native catalogue file names of ``app`` by kind (``KeyError`` for unknown apps)."""
    return dict(NATIVE_FILES[app])


def empty_catalog(app: str, kind: str = "sources") -> Table:
    """A catalogue with the core columns and no rows (what "no sources" looks like)."""
    table = Table()
    for spec in CORE_COLUMNS:
        table[spec.name] = Column(np.zeros(0, dtype=spec.dtype))
    return _annotate(table, app, kind)


def _annotate(table: Table, app: str, kind: str) -> Table:
    for spec in CORE_COLUMNS:
        col = table[spec.name]
        col.unit = spec.unit
        col.description = spec.description
        col.meta["ucd"] = spec.ucd
    table.meta["finder"] = app
    table.meta["catalog"] = kind
    return table


def _f(values: Any) -> npt.NDArray[np.float64]:
    """Float column with masked entries and negative-error sentinels as NaN."""
    if hasattr(values, "filled"):  # a masked column: masked -> NaN
        values = values.astype(np.float64).filled(np.nan)
    arr = np.asarray(values, dtype=np.float64)
    return np.asarray(arr, dtype=np.float64)


def _err(values: Any, scale: float = 1.0) -> npt.NDArray[np.float64]:
    arr = _f(values)
    arr = np.where(arr < 0, np.nan, arr)
    return arr * scale


def _i(values: Any) -> npt.NDArray[np.int64]:
    if hasattr(values, "filled"):
        values = values.filled(-1)
    return np.asarray(values, dtype=np.int64)


def _build(core: dict[str, Any], extras: dict[str, Any], app: str, kind: str) -> Table:
    n = len(core["ra"])
    core = {**core}
    core["ra"], core["dec"] = normalise_radec(core["ra"], core["dec"])
    table = Table()
    for spec in CORE_COLUMNS:
        value = core.get(spec.name)
        if value is None:
            value = np.full(n, np.nan if spec.dtype.startswith("f") else 0, dtype=spec.dtype)
        table[spec.name] = Column(np.asarray(value, dtype=spec.dtype))
    with np.errstate(divide="ignore", invalid="ignore"):
        table["snr"] = table["peak_flux"] / table["local_rms"]
    for name, (values, unit, description) in extras.items():
        column = Column(np.asarray(values), name=f"{app}_{name}", unit=unit, description=description)
        table[column.name] = column
    return _annotate(table, app, kind)


def _read_aegean(path: Path, kind: str) -> Table:
    native = Table.read(path, format="votable")
    n = len(native)
    core = {
        "source_id": np.arange(1, n + 1),
        "island_id": _i(native["island"]),
        "component_id": _i(native["source"]),
        "ra": _f(native["ra"]),
        "dec": _f(native["dec"]),
        "err_ra": _err(native["err_ra"], 3600.0),
        "err_dec": _err(native["err_dec"], 3600.0),
        "peak_flux": _f(native["peak_flux"]),
        "err_peak_flux": _err(native["err_peak_flux"]),
        "int_flux": _f(native["int_flux"]),
        "err_int_flux": _err(native["err_int_flux"]),
        "maj": _f(native["a"]),
        "min": _f(native["b"]),
        "pa": _f(native["pa"]),
        "local_rms": _f(native["local_rms"]),
        "flags": _i(native["flags"]),
    }
    extras = {
        "background": (_f(native["background"]), "Jy/beam", "Local background (BANE)"),
        "residual_mean": (_f(native["residual_mean"]), "Jy/beam", "Mean of the fit residual"),
        "residual_std": (_f(native["residual_std"]), "Jy/beam", "Standard deviation of the fit residual"),
        "psf_a": (_f(native["psf_a"]), "arcsec", "Local PSF major axis"),
        "psf_b": (_f(native["psf_b"]), "arcsec", "Local PSF minor axis"),
        "psf_pa": (_f(native["psf_pa"]), "deg", "Local PSF position angle"),
    }
    return _build(core, extras, "aegean", kind)


def _read_bdsf(path: Path, kind: str) -> Table:
    native = Table.read(path, format="fits")
    n = len(native)
    core: dict[str, Any] = {
        "source_id": np.arange(1, n + 1),
        "island_id": _i(native["Isl_id"]),
        "ra": _f(native["RA"]),
        "dec": _f(native["DEC"]),
        "err_ra": _err(native["E_RA"], 3600.0),
        "err_dec": _err(native["E_DEC"], 3600.0),
        "peak_flux": _f(native["Peak_flux"]),
        "err_peak_flux": _err(native["E_Peak_flux"]),
        "int_flux": _f(native["Total_flux"]),
        "err_int_flux": _err(native["E_Total_flux"]),
        "maj": _f(native["Maj"]) * 3600.0,
        "min": _f(native["Min"]) * 3600.0,
        "pa": _f(native["PA"]),
        "local_rms": _f(native["Isl_rms"]),
    }
    extras: dict[str, Any] = {
        "source_id": (_i(native["Source_id"]), None, "PyBDSF Source_id (0-based)"),
        "dc_maj": (_f(native["DC_Maj"]) * 3600.0, "arcsec", "Deconvolved major axis FWHM"),
        "dc_min": (_f(native["DC_Min"]) * 3600.0, "arcsec", "Deconvolved minor axis FWHM"),
        "dc_pa": (_f(native["DC_PA"]), "deg", "Deconvolved position angle"),
        "s_code": (
            np.asarray(native["S_Code"]).astype(str),
            None,
            "S single, M multi-Gaussian, C shares island",
        ),
    }
    if "Gaus_id" in native.colnames:
        core["component_id"] = _i(native["Gaus_id"])
        extras["gaus_id"] = (_i(native["Gaus_id"]), None, "PyBDSF Gaus_id (0-based)")
        flags = np.zeros(n, dtype=np.int32)
        if "Flag" in native.colnames:
            flags = np.asarray(native["Flag"], dtype=np.int32)
        core["flags"] = flags
    else:
        core["component_id"] = np.zeros(n, dtype=np.int64)
    return _build(core, extras, "bdsf", kind)


def _read_sfind(path: Path, kind: str) -> Table:
    native = Table.read(path, format="fits")
    n = len(native)
    core = {
        "source_id": np.arange(1, n + 1),
        "island_id": np.arange(1, n + 1),
        "component_id": np.zeros(n, dtype=np.int64),
        **{
            name: _f(native[name])
            for name in ("ra", "dec", "err_ra", "err_dec", "peak_flux", "err_peak_flux")
        },
        **{name: _f(native[name]) for name in ("int_flux", "err_int_flux", "maj", "min", "pa", "local_rms")},
        "flags": _i(native["flags"]),
    }
    extras = {
        "x": (_f(native["x"]), "pix", "0-based pixel column of the barycentre"),
        "y": (_f(native["y"]), "pix", "0-based pixel row of the barycentre"),
        "npix": (_i(native["npix"]), None, "Pixels in the island above the flood threshold"),
        "iso_flux": (_f(native["iso_flux"]), "Jy", "Sum over the island pixels / beam area"),
    }
    return _build(core, extras, "sfind", kind)


_READERS: Final[dict[str, Callable[[Path, str], Table]]] = {
    "aegean": _read_aegean,
    "bdsf": _read_bdsf,
    "sfind": _read_sfind,
}


def read_native(app: str, job_dir: Path, kind: str = "sources") -> Table:
    """The harmonised table of ``kind`` from ``app``'s native output in ``job_dir``.

    A missing native file means the finder found nothing (Aegean and PyBDSF write no
    table then), so the result is an empty catalogue, not an error.

    Raises
    ------
    KeyError
        For an app without a harmonised reader or an unknown ``kind``.
    """
    if kind not in CATALOG_KINDS:
        raise KeyError(kind)
    path = Path(job_dir) / NATIVE_FILES[app][kind]
    if not path.is_file():
        return empty_catalog(app, kind)
    table = _READERS[app](path, kind)
    table.meta["native_file"] = path.name
    return table
