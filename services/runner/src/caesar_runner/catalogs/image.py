"""Load a radio image the way every finder in this service sees it.

Radio images arrive as 2-D maps or as 3-D/4-D cubes with length-1 FREQ and STOKES axes
(what CASA writes), big-endian, with NaN blanks. The built-in finder, the preview and the
catalogue harmonisation all need the same thing: the first 2-D plane as native-endian
float32, a blank mask, the celestial WCS and the beam. Doing that in one place keeps the
pixel grid of the catalogue and of the preview identical.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

__all__ = ["ImageData", "ImageError", "find_frequency_hz", "header_beam_deg", "load_image", "plane"]


class ImageError(ValueError):
    """The file is not an image a finder can work on (no 2-D data, no celestial WCS)."""


@dataclass(frozen=True)
class ImageData:
    """The first 2-D plane of an image and what is needed to interpret it.

    Attributes
    ----------
    data
        Native-endian float32 pixels, blanks kept as NaN (``data[y, x]``).
    mask
        True where a pixel is blank (NaN or infinite).
    wcs
        The celestial (2-D) WCS.
    header
        The primary image header as read.
    beam_deg
        ``(bmaj, bmin, bpa)`` in degrees from the header or the override, else ``None``.
    pixel_deg
        Geometric mean pixel size in degrees.
    """

    data: npt.NDArray[np.float32]
    mask: npt.NDArray[np.bool_]
    wcs: WCS
    header: fits.Header
    beam_deg: tuple[float, float, float] | None
    pixel_deg: float

    @property
    def beam_px(self) -> tuple[float, float] | None:
        """Beam FWHM (major, minor) in pixels, or ``None`` without a beam."""
        if self.beam_deg is None:
            return None
        return self.beam_deg[0] / self.pixel_deg, self.beam_deg[1] / self.pixel_deg


_AIPS_BEAM_RE = re.compile(
    r"BMAJ\s*=\s*([-+0-9.EeDd]+)\s+BMIN\s*=\s*([-+0-9.EeDd]+)\s+BPA\s*=\s*([-+0-9.EeDd]+)"
)


def _aips_history_beam(header: fits.Header) -> tuple[float, float, float] | None:
    """The last CLEAN beam AIPS wrote into HISTORY cards (it writes no BMAJ keyword)."""
    for card in reversed(list(header.get("HISTORY", []))):
        match = _AIPS_BEAM_RE.search(str(card))
        if match:
            bmaj, bmin, bpa = (float(g.replace("D", "E")) for g in match.groups())
            return bmaj, bmin, bpa
    return None


def header_beam_deg(header: fits.Header) -> tuple[float, float, float] | None:
    """``(BMAJ, BMIN, BPA)`` in degrees if BMAJ and BMIN are positive numbers, else ``None``.

    Falls back to AIPS HISTORY cards, as the api's upload check does, so that an image the
    api accepted as having a beam also has one here.
    """
    try:
        bmaj = float(header["BMAJ"])
        bmin = float(header["BMIN"])
    except (KeyError, TypeError, ValueError):
        history = _aips_history_beam(header)
        if history is None:
            return None
        bmaj, bmin, _ = history
        return (bmaj, bmin, history[2]) if bmaj > 0 and bmin > 0 else None
    if not (math.isfinite(bmaj) and math.isfinite(bmin) and bmaj > 0 and bmin > 0):
        return None
    try:
        bpa = float(header.get("BPA", 0.0))
    except (TypeError, ValueError):
        bpa = 0.0
    return bmaj, bmin, bpa if math.isfinite(bpa) else 0.0


def find_frequency_hz(header: fits.Header) -> float | None:
    """The observing frequency from a FREQ axis, ``RESTFRQ``, ``RESTFREQ`` or ``FREQ``.

    PyBDSF reads only the FREQ axis, ``RESTFREQ`` and ``FREQ``; the standard ``RESTFRQ``
    that many imagers (and our simulator) write is ignored, so the service looks here.
    """
    naxis = int(header.get("NAXIS", 0))
    for axis in range(1, naxis + 1):
        if str(header.get(f"CTYPE{axis}", "")).upper().startswith("FREQ"):
            value = header.get(f"CRVAL{axis}")
            if isinstance(value, int | float) and value > 0:
                return float(value)
    for key in ("RESTFRQ", "RESTFREQ", "FREQ"):
        value = header.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def plane(data: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
    """The first 2-D plane as native float32 (sep refuses big-endian FITS data)."""
    while data.ndim > 2:
        data = data[0]
    return np.ascontiguousarray(data, dtype=np.float32)


def load_image(path: str | Path, beam_deg: tuple[float, float, float] | None = None) -> ImageData:
    """Read the first image HDU of ``path``.

    Parameters
    ----------
    path
        A FITS image.
    beam_deg
        A beam that overrides the header's (the user's beam parameter).

    Raises
    ------
    ImageError
        No HDU with at least 2-D data, or no celestial WCS.
    """
    with fits.open(path, memmap=False) as hdul:
        hdu = next((h for h in hdul if h.data is not None and getattr(h.data, "ndim", 0) >= 2), None)
        if hdu is None:
            raise ImageError(f"{Path(path).name}: no image HDU with 2 or more axes")
        header = hdu.header.copy()
        data = plane(hdu.data)
    wcs = WCS(header, naxis=2).celestial if header.get("NAXIS", 0) >= 2 else None
    if wcs is None or wcs.naxis != 2 or not wcs.has_celestial:
        raise ImageError(f"{Path(path).name}: no celestial WCS")
    scales = proj_plane_pixel_scales(wcs)
    pixel_deg = float(math.sqrt(abs(scales[0] * scales[1])))
    mask = ~np.isfinite(data)
    return ImageData(data, mask, wcs, header, beam_deg or header_beam_deg(header), pixel_deg)
