"""Preview PNG: the image with an RA/Dec grid and the catalogue's sources drawn on it.

The preview is a quick look shown at under 1000 px, and it is made for every job, so it
must cost a small fraction of the finder. It used to be a matplotlib figure on WCSAxes:
importing matplotlib and its WCS axes, then laying out and drawing the figure (twice,
for ``bbox_inches="tight"``), took 1.5-2 s, more than sfind needs to find the sources of
a 2048^2 map. Now:

* the image is block-averaged (NaN-aware) to at most ``max_pixels`` per side *before*
  anything else, so the stretch and the drawing work on the display size, not on the
  full image; the WCS is sliced the same way, so sources land on the right pixels;
* the asinh stretch is a few numpy operations on that small array;
* Pillow (already installed with matplotlib, imported in ~0.03 s) draws the pixels, a
  labelled RA/Dec grid computed from the WCS, and every source as a rotated ellipse
  (a polygon) or a cross, on a palette image (one byte per pixel: the PNG encodes 4x
  faster than RGB); the PNG is written to a temporary name and renamed.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from astropy.table import Table

from caesar_runner.catalogs.image import ImageData

__all__ = ["decimate", "grid_step_deg", "private_matplotlib_config", "render_preview", "stretch"]

# A palette image (one byte per pixel: PNG encoding 4x faster and the file a third
# smaller than RGB): 252 grey levels, then the four drawing colours.
GREY_LEVELS: Final = 252
RED: Final = 252
BLUE: Final = 253
BLACK: Final = 254
WHITE: Final = 255
_PALETTE: Final = [
    *(v for i in range(GREY_LEVELS) for v in (round(i * 255 / (GREY_LEVELS - 1)),) * 3),
    *(214, 39, 40),
    *(70, 130, 180),
    *(0, 0, 0),
    *(255, 255, 255),
]
MARGIN_LEFT: Final = 64
MARGIN_BOTTOM: Final = 36
MARGIN_TOP: Final = 28
MARGIN_RIGHT: Final = 16
# Decimal steps (labels are decimal degrees, so a 10' step would print as 0.1667).
_GRID_STEPS_DEG: Final = (
    *(m * 10.0**e for e in range(-5, 1) for m in (1.0, 2.0, 5.0)),
    10.0,
    15.0,
    30.0,
    45.0,
    90.0,
)


@contextmanager
def private_matplotlib_config() -> Iterator[None]:
    """Give matplotlib a throw-away config/cache directory unless one is set.

    The preview no longer needs matplotlib, but PyBDSF and AegeanTools import it; a job
    step that does should not leave a font cache among the job's outputs, and a shared
    fixed path under /tmp could be pre-created by another user. A private temporary
    directory, removed on exit, costs one font scan (well under a second).
    """
    if os.environ.get("MPLCONFIGDIR"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="caesar-mpl-") as tmp:
        os.environ["MPLCONFIGDIR"] = tmp
        try:
            yield
        finally:
            os.environ.pop("MPLCONFIGDIR", None)


def decimate(data: npt.NDArray[np.float32], max_pixels: int) -> tuple[npt.NDArray[np.float32], int]:
    """Block-average ``data`` by the smallest integer factor that fits ``max_pixels``.

    Returns the smaller image and the factor (1 = unchanged). Blank pixels are ignored
    in the averages; an all-blank block stays NaN.
    """
    factor = max(1, math.ceil(max(data.shape) / max_pixels))
    if factor == 1:
        return data, 1
    ny, nx = (data.shape[0] // factor) * factor, (data.shape[1] // factor) * factor
    blocks = data[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor)
    if bool(np.isfinite(data.sum(dtype=np.float64))):  # no blank pixel: a plain mean, 3x faster
        return blocks.mean(axis=(1, 3), dtype=np.float32), factor
    finite = np.isfinite(blocks)
    sums = np.where(finite, blocks, np.float32(0)).sum(axis=(1, 3), dtype=np.float64)
    counts = finite.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        small = np.where(counts > 0, sums / counts, np.nan)
    return small.astype(np.float32), factor


def stretch(data: npt.NDArray[np.float32], softening: float = 0.1) -> npt.NDArray[np.uint8]:
    """Grey levels of ``data``: asinh between the 0.5th and 99.8th percentiles, inverted.

    Shows the noise and keeps bright sources from saturating the rest; bright is dark
    (astronomers' ``gray_r``), blank pixels are white.
    """
    finite = data[np.isfinite(data)]
    lo, hi = np.percentile(finite, [0.5, 99.8]) if finite.size else (0.0, 1.0)
    if not hi > lo:
        hi = lo + 1.0
    with np.errstate(invalid="ignore"):
        scaled = np.clip((data.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)
    levels = np.arcsinh(scaled / softening) / math.asinh(1.0 / softening)
    grey = np.where(np.isfinite(levels), 255.0 * (1.0 - levels), 255.0)
    return np.asarray(np.round(grey), dtype=np.uint8)


def grid_step_deg(span_deg: float, max_lines: int = 6) -> float:
    """The smallest round step (1, 2 or 5 x 10^k degrees) giving at most ``max_lines`` lines."""
    for step in _GRID_STEPS_DEG:
        if span_deg / step <= max_lines:
            return step
    return _GRID_STEPS_DEG[-1]


def _label(value: float, step: float) -> str:
    decimals = max(0, math.ceil(-math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


class _Canvas:
    """Pixel (x, y) of the decimated image, y up -> the PNG's coordinates, y down."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height

    def xy(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], ...]:
        px = np.asarray(x, dtype=np.float64) + MARGIN_LEFT + 0.5
        py = MARGIN_TOP + self.height - 0.5 - np.asarray(y, dtype=np.float64)
        return px, py

    def inside(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        return (x >= -0.5) & (x <= self.width - 0.5) & (y >= -0.5) & (y <= self.height - 0.5)


def _draw_grid(draw: Any, wcs: Any, canvas: _Canvas, font: Any) -> None:
    """RA and Dec lines at round values, labelled where they leave the image (bottom, left)."""
    w, h = canvas.width, canvas.height
    gx, gy = np.meshgrid(np.linspace(-0.5, w - 0.5, 24), np.linspace(-0.5, h - 0.5, 24))
    ra, dec = wcs.pixel_to_world_values(gx.ravel(), gy.ravel())
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        return
    ra, dec = np.asarray(ra)[ok], np.asarray(dec)[ok]
    centre = float(ra[len(ra) // 2])
    rel = (ra - centre + 180.0) % 360.0 - 180.0  # unwrapped around the centre: RA 0 is no seam
    ra_lo, ra_hi = centre + rel.min(), centre + rel.max()
    dec_lo, dec_hi = float(dec.min()), float(dec.max())
    if ra_hi - ra_lo > 180.0:  # a pole in the field: meridians every 45 deg
        ra_lo, ra_hi, ra_step = 0.0, 360.0, 45.0
    else:
        ra_step = grid_step_deg((ra_hi - ra_lo) * max(math.cos(math.radians((dec_lo + dec_hi) / 2)), 0.1))
    samples = np.linspace(0.0, 1.0, 64)
    dec_step = grid_step_deg(dec_hi - dec_lo)
    lines: list[tuple[str, float, npt.NDArray[np.float64], npt.NDArray[np.float64]]] = []
    for value in np.arange(math.ceil(ra_lo / ra_step) * ra_step, ra_hi, ra_step):
        x, y = wcs.world_to_pixel_values(np.full(64, value), dec_lo + samples * (dec_hi - dec_lo))
        lines.append(("ra", float(value) % 360.0, np.asarray(x), np.asarray(y)))
    for value in np.arange(math.ceil(dec_lo / dec_step) * dec_step, dec_hi, dec_step):
        x, y = wcs.world_to_pixel_values(ra_lo + samples * (ra_hi - ra_lo), np.full(64, value))
        lines.append(("dec", float(value), np.asarray(x), np.asarray(y)))
    for axis, value, x, y in lines:
        keep = canvas.inside(x, y) & np.isfinite(x) & np.isfinite(y)
        if keep.sum() < 2:
            continue
        px, py = canvas.xy(x[keep], y[keep])
        draw.line(list(zip(px.tolist(), py.tolist(), strict=True)), fill=BLUE, width=1)
        step = ra_step if axis == "ra" else dec_step
        text = _label(value, step)
        if axis == "ra":
            at = int(np.argmin(y[keep]))  # where the line meets the bottom edge
            if y[keep][at] < 0.1 * h:
                draw.text((px[at], MARGIN_TOP + h + 4), text, fill=BLACK, font=font, anchor="ma")
        else:
            at = int(np.argmin(x[keep]))
            if x[keep][at] < 0.1 * w:
                draw.text((MARGIN_LEFT - 4, py[at]), text, fill=BLACK, font=font, anchor="rm")


def _ellipse_polygons(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    semi_major: npt.NDArray[np.float64],
    semi_minor: npt.NDArray[np.float64],
    pa_deg: npt.NDArray[np.float64],
    n_points: int = 24,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Outline points ``(n_sources, n_points)`` of ellipses whose major axis is at ``pa``
    from +y (north) towards -x (east on a north-up, east-left image)."""
    t = np.linspace(0.0, 2.0 * math.pi, n_points, endpoint=False)
    pa = np.radians(pa_deg)[:, None]
    cos_t, sin_t = np.cos(t)[None, :], np.sin(t)[None, :]
    a, b = semi_major[:, None], semi_minor[:, None]
    px = x[:, None] + a * cos_t * -np.sin(pa) + b * sin_t * np.cos(pa)
    py = y[:, None] + a * cos_t * np.cos(pa) + b * sin_t * np.sin(pa)
    return px, py


def _draw_sources(draw: Any, wcs: Any, catalog: Table, canvas: _Canvas, arcsec_to_px: float) -> None:
    """Ellipses at the FWHM for sources with a size, crosses for the others."""
    x, y = wcs.world_to_pixel_values(np.asarray(catalog["ra"]), np.asarray(catalog["dec"]))
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    maj, mn, pa = (np.asarray(catalog[c], dtype=np.float64) for c in ("maj", "min", "pa"))
    ok = np.isfinite(x) & np.isfinite(y) & canvas.inside(x, y)
    sized = ok & np.isfinite(maj) & np.isfinite(mn) & (maj > 0)
    if sized.any():
        ex, ey = _ellipse_polygons(
            x[sized],
            y[sized],
            np.maximum(maj[sized] * arcsec_to_px / 2.0, 1.5),
            np.maximum(mn[sized] * arcsec_to_px / 2.0, 1.5),
            np.where(np.isfinite(pa[sized]), pa[sized], 0.0),
        )
        px, py = canvas.xy(ex, ey)
        for row_x, row_y in zip(px.tolist(), py.tolist(), strict=True):
            draw.polygon(list(zip(row_x, row_y, strict=True)), outline=RED)
    point = ok & ~sized
    for cx, cy in zip(*(v.tolist() for v in canvas.xy(x[point], y[point])), strict=True):
        draw.line([(cx - 4, cy), (cx + 4, cy)], fill=RED)
        draw.line([(cx, cy - 4), (cx, cy + 4)], fill=RED)


def render_preview(image: ImageData, catalog: Table, path: Path, max_pixels: int = 800) -> None:
    """Draw ``image`` with ``catalog``'s sources and an RA/Dec grid to the PNG ``path``."""
    from PIL import Image, ImageDraw

    small, factor = decimate(image.data, max_pixels)
    wcs = image.wcs[::factor, ::factor] if factor > 1 else image.wcs
    height, width = small.shape
    canvas = _Canvas(width, height)
    picture = Image.new("P", (MARGIN_LEFT + width + MARGIN_RIGHT, MARGIN_TOP + height + MARGIN_BOTTOM), WHITE)
    picture.putpalette(_PALETTE)
    grey = (stretch(small)[::-1].astype(np.uint16) * (GREY_LEVELS - 1) + 127) // 255
    picture.paste(
        Image.fromarray(np.ascontiguousarray(grey, dtype=np.uint8), mode="L"), (MARGIN_LEFT, MARGIN_TOP)
    )
    draw = ImageDraw.Draw(picture)
    font = _font(12)
    _draw_grid(draw, wcs, canvas, font)
    if len(catalog):
        _draw_sources(draw, wcs, catalog, canvas, 1.0 / (image.pixel_deg * 3600.0 * factor))
    draw.rectangle([MARGIN_LEFT - 1, MARGIN_TOP - 1, MARGIN_LEFT + width, MARGIN_TOP + height], outline=BLACK)
    title = f"{catalog.meta.get('finder', '')}: {len(catalog)} sources"
    draw.text((MARGIN_LEFT + width // 2, MARGIN_TOP // 2), title, fill=BLACK, font=_font(14), anchor="mm")
    draw.text((4, MARGIN_TOP - 4), "Dec (deg)", fill=BLACK, font=font, anchor="ld")
    draw.text(
        (MARGIN_LEFT + width // 2, MARGIN_TOP + height + MARGIN_BOTTOM - 2),
        "RA (deg)",
        fill=BLACK,
        font=font,
        anchor="md",
    )
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    picture.save(tmp, format="PNG", compress_level=3)
    os.replace(tmp, path)
