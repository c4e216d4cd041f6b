"""Where the preview's RA/Dec ticks go and what they say: sexagesimal, on the usual sides.

Astronomers read positions in hours/degrees, minutes and seconds, with RA along the bottom
and Dec up the left, as every viewer (DS9, CARTA, matplotlib's WCSAxes) draws them. A tick
is where a line of constant RA (Dec) crosses an edge of the image; finding the crossings
by sampling the edge works for any projection, rotation or flip, and RA is unwrapped
along the edge so that a field across RA 0h has no seam.

Pure geometry: pixel coordinates here are those of the displayed grid, 0-based, pixel
centres on integers, ``x`` to the right and ``y`` up (FITS order); the preview maps them
to the PNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

from caesar_runner.catalogs.display import nice_step

__all__ = [
    "DEC_STEPS_DEG",
    "RA_STEPS_DEG",
    "Edge",
    "Tick",
    "choose_step",
    "format_dec",
    "format_ra",
    "grid_lines",
    "pixel_ticks",
    "sky_ticks",
]

Edge = Literal["bottom", "top", "left", "right"]
Polyline = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]


class CelestialWcs(Protocol):
    """What the ticks need of :class:`astropy.wcs.WCS` (pixel <-> world in degrees)."""

    def pixel_to_world_values(self, *pixel: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], ...]: ...

    def world_to_pixel_values(self, *world: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], ...]: ...


@dataclass(frozen=True)
class Tick:
    """A tick mark on ``edge`` at grid coordinate ``position`` (x on bottom/top, y on
    left/right); ``label`` is empty on the unlabelled sides (top, right)."""

    edge: Edge
    position: float
    label: str


_RA_STEPS_S: Final = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 20, 30)
_RA_STEPS_S_ALL: Final = (
    *_RA_STEPS_S,
    *(60 * m for m in (1, 2, 5, 10, 15, 20, 30)),
    *(3600 * h for h in (1, 2, 3, 4, 6, 12)),
)
RA_STEPS_DEG: Final = tuple(s / 240.0 for s in _RA_STEPS_S_ALL)
"""RA tick steps: round numbers of seconds, minutes and hours of time, in degrees."""
_DEC_STEPS_AS: Final = (
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    *(1, 2, 5, 10, 15, 20, 30),
    *(60 * m for m in (1, 2, 5, 10, 15, 20, 30)),
    *(3600 * d for d in (1, 2, 5, 10, 15, 30, 45, 90)),
)
DEC_STEPS_DEG: Final = tuple(s / 3600.0 for s in _DEC_STEPS_AS)
"""Dec tick steps: round numbers of arcseconds, arcminutes and degrees, in degrees."""
_EDGE_SAMPLES: Final = 512
DEGREE: Final = "\u00b0"
PRIME: Final = "\u2032"
DOUBLE_PRIME: Final = "\u2033"
MINUS: Final = "\u2212"


def choose_step(span_deg: float, steps_deg: tuple[float, ...], max_ticks: int) -> float:
    """The smallest step of ``steps_deg`` giving at most ``max_ticks`` ticks over ``span_deg``."""
    for step in steps_deg:
        if span_deg / step <= max(1, max_ticks):
            return step
    return steps_deg[-1]


def _fields(step: float, unit: float) -> tuple[int, int]:
    """``(number of fields, decimals)`` of a sexagesimal label at ``step`` (in ``unit``s of
    the last field: seconds of time or of arc)."""
    if step >= unit * 3600:
        return 1, 0
    if step >= unit * 60:
        return 2, 0
    return 3, (0 if step >= unit else max(0, math.ceil(-math.log10(step / unit) - 1e-9)))


def _split(total_seconds: float, n_fields: int, decimals: int) -> tuple[int, int, float]:
    """Round ``total_seconds`` to the last shown field, then split into (big, minutes, seconds)."""
    quantum = {1: 3600.0, 2: 60.0}.get(n_fields, 10.0**-decimals)
    units = round(total_seconds / quantum)
    seconds = units * quantum
    big, rest = divmod(round(seconds * 10**decimals), 3600 * 10**decimals)
    minutes, secs = divmod(rest, 60 * 10**decimals)
    return int(big), int(minutes), secs / 10**decimals


def format_ra(value_deg: float, step_deg: float, unicode: bool = True) -> str:
    """``17h47m``, ``17h47m00s`` or ``17h47m00.5s``: as many fields as ``step_deg`` needs."""
    del unicode  # h/m/s need no special glyphs
    seconds = (value_deg % 360.0) * 240.0
    n_fields, decimals = _fields(step_deg * 240.0, 1.0)
    hours, minutes, secs = _split(seconds, n_fields, decimals)
    hours %= 24
    if n_fields == 1:
        return f"{hours}h"
    if n_fields == 2:
        return f"{hours}h{minutes:02d}m"
    width = 2 + (decimals + 1 if decimals else 0)
    return f"{hours}h{minutes:02d}m{secs:0{width}.{decimals}f}s"


def format_dec(value_deg: float, step_deg: float, unicode: bool = True) -> str:
    """``-28d``, ``-28d30'``, ``-28d30'00"`` as many fields as ``step_deg`` needs, written with
    the degree sign, primes and a minus sign (U+2212) when ``unicode``, else in ASCII."""
    deg_s, min_s, sec_s, minus = (DEGREE, PRIME, DOUBLE_PRIME, MINUS) if unicode else ("d", "'", '"', "-")
    arcsec = abs(value_deg) * 3600.0
    n_fields, decimals = _fields(step_deg * 3600.0, 1.0)
    degrees, minutes, secs = _split(arcsec, n_fields, decimals)
    sign = minus if value_deg < 0 and (degrees or minutes or secs) else ("+" if value_deg > 0 else "")
    if n_fields == 1:
        return f"{sign}{degrees}{deg_s}"
    if n_fields == 2:
        return f"{sign}{degrees}{deg_s}{minutes:02d}{min_s}"
    width = 2 + (decimals + 1 if decimals else 0)
    return f"{sign}{degrees}{deg_s}{minutes:02d}{min_s}{secs:0{width}.{decimals}f}{sec_s}"


def _edge_pixels(edge: Edge, shape: tuple[int, int], n: int) -> tuple[npt.NDArray[np.float64], ...]:
    """Points along ``edge`` of a ``(ny, nx)`` grid: (position along the edge, x, y)."""
    ny, nx = shape
    if edge in ("bottom", "top"):
        along = np.linspace(-0.5, nx - 0.5, n)
        return along, along, np.full(n, -0.5 if edge == "bottom" else ny - 0.5)
    along = np.linspace(-0.5, ny - 0.5, n)
    return along, np.full(n, -0.5 if edge == "left" else nx - 0.5), along


def _edge_world(
    wcs: CelestialWcs, edge: Edge, shape: tuple[int, int], index: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(position along ``edge``, world coordinate ``index``: 0 RA unwrapped, 1 Dec)."""
    along, x, y = _edge_pixels(edge, shape, _EDGE_SAMPLES)
    world = np.asarray(wcs.pixel_to_world_values(x, y)[index], dtype=np.float64)
    ok = np.isfinite(world)
    along, world = along[ok], world[ok]
    if index == 0 and world.size:
        world = np.unwrap(world, period=360.0)
    return along, world


def _crossings(
    along: npt.NDArray[np.float64], world: npt.NDArray[np.float64], step: float
) -> list[tuple[float, float]]:
    """``(position, value)`` where ``world`` crosses a multiple of ``step``."""
    if world.size < 2:
        return []
    out: list[tuple[float, float]] = []
    lo, hi = float(world.min()), float(world.max())
    for k in range(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1):
        value = k * step
        d = world - value
        hits = np.nonzero(((d[:-1] <= 0) & (d[1:] > 0)) | ((d[:-1] >= 0) & (d[1:] < 0)))[0]
        for i in hits.tolist():
            t = 0.0 if d[i] == d[i + 1] else d[i] / (d[i] - d[i + 1])
            out.append((float(along[i] + t * (along[i + 1] - along[i])), value))
    return out


def sky_ticks(
    wcs: CelestialWcs, shape: tuple[int, int], max_ra_ticks: int, max_dec_ticks: int, unicode: bool = True
) -> tuple[list[Tick], float, float]:
    """RA ticks on the bottom (labelled) and top, Dec on the left (labelled) and right.

    Returns the ticks and the RA and Dec steps (degrees) they use.
    """
    along, ra = _edge_world(wcs, "bottom", shape, 0)
    ra_span = float(ra.max() - ra.min()) if ra.size else 360.0
    ra_step = choose_step(ra_span, RA_STEPS_DEG, max_ra_ticks)
    along_l, dec = _edge_world(wcs, "left", shape, 1)
    dec_span = float(dec.max() - dec.min()) if dec.size else 180.0
    dec_step = choose_step(dec_span, DEC_STEPS_DEG, max_dec_ticks)
    edges: dict[Edge, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {
        "bottom": (along, ra),
        "top": _edge_world(wcs, "top", shape, 0),
        "left": (along_l, dec),
        "right": _edge_world(wcs, "right", shape, 1),
    }
    ticks: list[Tick] = []
    for edge, (positions, world) in edges.items():
        step = ra_step if edge in ("bottom", "top") else dec_step
        for position, value in _crossings(positions, world, step):
            label = ""
            if edge == "bottom":
                label = format_ra(value, step, unicode)
            elif edge == "left":
                label = format_dec(value, step, unicode)
            ticks.append(Tick(edge, position, label))
    return ticks, ra_step, dec_step


def pixel_ticks(shape: tuple[int, int], binning: int, max_x_ticks: int, max_y_ticks: int) -> list[Tick]:
    """Pixel-index ticks (of the full-resolution image) for an image without a celestial WCS."""
    ny, nx = shape
    axes: tuple[tuple[int, int, Edge, Edge], ...] = (
        (nx, max_x_ticks, "bottom", "top"),
        (ny, max_y_ticks, "left", "right"),
    )
    ticks: list[Tick] = []
    for n, max_ticks, labelled, plain in axes:
        step = max(1.0, nice_step(n * binning, max_ticks))
        for value in np.arange(0.0, n * binning, step).tolist():
            ticks.append(Tick(labelled, value / binning, f"{value:.0f}"))
            ticks.append(Tick(plain, value / binning, ""))
    return ticks


def grid_lines(wcs: CelestialWcs, shape: tuple[int, int], ra_step: float, dec_step: float) -> list[Polyline]:
    """Lines of constant RA and Dec at the tick steps, as grid-pixel polylines inside the image."""
    ny, nx = shape
    gx, gy = np.meshgrid(np.linspace(-0.5, nx - 0.5, 24), np.linspace(-0.5, ny - 0.5, 24))
    ra, dec = (np.asarray(v, dtype=np.float64) for v in wcs.pixel_to_world_values(gx.ravel(), gy.ravel()))
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        return []
    ra, dec = ra[ok], dec[ok]
    centre = float(ra[len(ra) // 2])
    rel = (ra - centre + 180.0) % 360.0 - 180.0  # unwrapped around the centre: RA 0 is no seam
    ra_lo, ra_hi = centre + float(rel.min()), centre + float(rel.max())
    dec_lo, dec_hi = float(dec.min()), float(dec.max())
    if ra_hi - ra_lo > 180.0:  # a pole in the field: meridians every 45 deg
        ra_lo, ra_hi, ra_step = 0.0, 360.0, 45.0
    samples = np.linspace(0.0, 1.0, 96)
    lines: list[Polyline] = []
    curves = [
        wcs.world_to_pixel_values(np.full(samples.size, v), dec_lo + samples * (dec_hi - dec_lo))
        for v in np.arange(math.ceil(ra_lo / ra_step) * ra_step, ra_hi, ra_step)
    ] + [
        wcs.world_to_pixel_values(ra_lo + samples * (ra_hi - ra_lo), np.full(samples.size, v))
        for v in np.arange(math.ceil(dec_lo / dec_step) * dec_step, dec_hi, dec_step)
    ]
    for cx, cy in curves:
        x, y = np.asarray(cx, dtype=np.float64), np.asarray(cy, dtype=np.float64)
        keep = np.isfinite(x) & np.isfinite(y) & (x >= -0.5) & (x <= nx - 0.5) & (y >= -0.5) & (y <= ny - 0.5)
        if keep.sum() >= 2:
            lines.append((x[keep], y[keep]))
    return lines
