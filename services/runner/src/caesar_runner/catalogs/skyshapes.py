"""Ellipses on the sky (fitted sources, the restoring beam) as outlines in image pixels.

Catalogues give a source's size as FWHM axes in arcsec and a position angle east of north;
the header gives the beam the same way (in degrees). Drawing them needs the directions of
north and east *at that position* in pixels: the local Jacobian of the WCS, from two
small offsets. That is right for any pixel scale, rotation, flip or projection, where a
single "arcsec per pixel" with north up would mirror or distort them.

Pure geometry on the displayed grid (0-based pixel centres, ``y`` up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from caesar_runner.catalogs.skyaxes import CelestialWcs

__all__ = ["BeamShape", "Ellipses", "corner_beam", "sky_ellipses"]

_OFFSET_ARCSEC: Final = 1.0


@dataclass(frozen=True)
class Ellipses:
    """Centres ``(x, y)`` and closed outlines ``(n, n_points)`` in grid pixels; ``semi_px``
    are the drawn semi-axes (major, minor) in grid pixels, after the visibility minimum."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    outline_x: npt.NDArray[np.float64]
    outline_y: npt.NDArray[np.float64]
    semi_major_px: npt.NDArray[np.float64]
    semi_minor_px: npt.NDArray[np.float64]


@dataclass(frozen=True)
class BeamShape:
    """The beam drawn in the bottom-left corner, and the square behind it (grid pixels)."""

    ellipse: Ellipses
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in grid pixels


def _local_frame(
    wcs: CelestialWcs, ra: npt.NDArray[np.float64], dec: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], ...]:
    """Pixel position and the pixel vectors of 1 arcsec east and 1 arcsec north there."""
    step = _OFFSET_ARCSEC / 3600.0
    cos_dec = np.maximum(np.cos(np.radians(dec)), 1e-6)
    x0, y0 = (np.asarray(v, dtype=np.float64) for v in wcs.world_to_pixel_values(ra, dec))
    xe, ye = (np.asarray(v, dtype=np.float64) for v in wcs.world_to_pixel_values(ra + step / cos_dec, dec))
    north_dec = np.where(dec + step > 90.0, dec - step, dec + step)
    sign = np.where(dec + step > 90.0, -1.0, 1.0)
    xn, yn = (np.asarray(v, dtype=np.float64) for v in wcs.world_to_pixel_values(ra, north_dec))
    scale = 1.0 / _OFFSET_ARCSEC
    return x0, y0, (xe - x0) * scale, (ye - y0) * scale, (xn - x0) * scale * sign, (yn - y0) * scale * sign


def sky_ellipses(
    wcs: CelestialWcs,
    ra: npt.ArrayLike,
    dec: npt.ArrayLike,
    maj_arcsec: npt.ArrayLike,
    min_arcsec: npt.ArrayLike,
    pa_deg: npt.ArrayLike,
    n_points: int = 24,
    min_semi_px: float = 0.0,
) -> Ellipses:
    """Outlines of ellipses with FWHM axes ``maj``/``min`` (arcsec) at ``pa`` east of north.

    Semi-axes are at least ``min_semi_px`` grid pixels, so that a source smaller than a
    display pixel is still a visible ring; a NaN size draws a ring of that minimum, and a
    NaN angle is 0.
    """
    ra_a, dec_a = (
        np.atleast_1d(np.asarray(ra, dtype=np.float64)),
        np.atleast_1d(np.asarray(dec, dtype=np.float64)),
    )
    x0, y0, ex, ey, nx, ny = _local_frame(wcs, ra_a, dec_a)
    arcsec_px = np.sqrt(np.abs(ex * ny - ey * nx))  # grid pixels per arcsec (geometric mean)
    with np.errstate(invalid="ignore", divide="ignore"):
        floor = np.where(arcsec_px > 0, min_semi_px / arcsec_px, 0.0)

    def per_source(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.broadcast_to(np.asarray(values, dtype=np.float64), ra_a.shape)

    a = np.fmax(np.nan_to_num(per_source(maj_arcsec) / 2.0, nan=0.0), floor)
    b = np.fmax(np.nan_to_num(per_source(min_arcsec) / 2.0, nan=0.0), floor)
    pa = np.radians(np.nan_to_num(per_source(pa_deg), nan=0.0))
    t = np.linspace(0.0, 2.0 * math.pi, n_points, endpoint=False)[None, :]
    # Offsets on the sky (east, north), arcsec: major axis along (sin pa, cos pa).
    a_, b_, pa_ = a[:, None], b[:, None], pa[:, None]
    east = a_ * np.cos(t) * np.sin(pa_) + b_ * np.sin(t) * np.cos(pa_)
    north = a_ * np.cos(t) * np.cos(pa_) - b_ * np.sin(t) * np.sin(pa_)
    outline_x = x0[:, None] + east * ex[:, None] + north * nx[:, None]
    outline_y = y0[:, None] + east * ey[:, None] + north * ny[:, None]
    return Ellipses(x0, y0, outline_x, outline_y, a * arcsec_px, b * arcsec_px)


def corner_beam(
    wcs: CelestialWcs,
    shape: tuple[int, int],
    beam_deg: tuple[float, float, float],
    pad_px: float,
    min_semi_px: float = 0.0,
) -> BeamShape | None:
    """The beam ellipse ``pad_px`` inside the bottom-left corner of a ``(ny, nx)`` grid.

    ``None`` if the WCS cannot place it (the corner is off the sky) or the beam would not
    fit in half the image.
    """
    ny, nx = shape
    bmaj, bmin, bpa = beam_deg
    cra, cdec = (
        np.atleast_1d(np.asarray(v, dtype=np.float64))
        for v in wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2)
    )
    probe = sky_ellipses(wcs, cra, cdec, bmaj * 3600.0, bmin * 3600.0, bpa, 48, min_semi_px)
    if not np.isfinite(probe.outline_x).all():
        return None
    rx = float(np.ptp(probe.outline_x)) / 2.0
    ry = float(np.ptp(probe.outline_y)) / 2.0
    if not (0 < 2 * (rx + pad_px) <= nx / 2 and 0 < 2 * (ry + pad_px) <= ny / 2):
        return None
    cx, cy = -0.5 + pad_px + rx, -0.5 + pad_px + ry
    ra, dec = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in wcs.pixel_to_world_values(cx, cy))
    if not (np.isfinite(ra).all() and np.isfinite(dec).all()):
        return None
    ellipse = sky_ellipses(wcs, ra, dec, bmaj * 3600.0, bmin * 3600.0, bpa, 48, min_semi_px)
    half = pad_px / 2.0
    box = (cx - rx - half, cy - ry - half, cx + rx + half, cy + ry + half)
    return BeamShape(ellipse, box)
