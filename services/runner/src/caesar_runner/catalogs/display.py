"""Display grid and grey levels of the preview: block averaging, zscale limits, asinh stretch.

Pure numpy on purpose. ``astropy.visualization`` has the same ZScale interval and asinh
stretch, but importing it imports matplotlib (about 1 s, more than the whole preview), so
the IRAF zscale algorithm is restated here, step for step as astropy implements it (the
unit tests compare the two).

Radio maps are mostly noise with a few bright compact sources. A linear stretch between
the extremes shows nothing but the brightest sources; zscale alone (about -3 to +6
sigma) shows mostly noise with every source saturated. The preview takes zscale's lower
limit (the noise floor) and as the upper limit the larger of the 99.9th percentile and
five zscale ranges above the floor (but not above the maximum), with an asinh stretch in
between: the noise is a light texture and sources stand out with their structure.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "ASINH_SOFTENING",
    "GREY_LEVELS",
    "asinh_level",
    "decimate",
    "display_limits",
    "grey_levels",
    "nice_step",
    "zoom_factor",
    "zscale_limits",
]

GREY_LEVELS: Final = 248
"""Grey levels of the palette image (the remaining palette entries are drawing colours)."""
ASINH_SOFTENING: Final = 0.1
"""``a`` of the asinh stretch: linear below about ``a`` of the range, logarithmic above."""
UPPER_PERCENTILE: Final = 99.9
ZSCALE_RANGES: Final = 5.0
"""The upper limit is at least this many zscale ranges above the lower one (or the maximum):
faint emission and noise stay light when few pixels are bright."""
_PERCENTILE_SAMPLE: Final = 200_000


def decimate(data: npt.NDArray[np.float32], max_pixels: int) -> tuple[npt.NDArray[np.float32], int]:
    """Block-average ``data`` by the smallest integer factor that fits ``max_pixels``.

    Returns the smaller image and the factor (1 = unchanged). Blank pixels are ignored
    in the averages; an all-blank block stays NaN. Rows and columns beyond a whole
    number of blocks are dropped (the preview's WCS is sliced the same way).
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


def zoom_factor(shape: tuple[int, ...], min_pixels: int, max_pixels: int) -> int:
    """Integer magnification so that a small image's longer side reaches ``min_pixels``
    without passing ``max_pixels``.

    A 128^2 cut-out shown at 128 px is unreadable next to its labels; pixel replication
    by a whole factor keeps every pixel square and the pixel -> PNG mapping exact.
    """
    side = max(1, max(shape))
    return max(1, min(math.ceil(min_pixels / side), max_pixels // side))


def zscale_limits(
    data: npt.NDArray[np.floating],
    n_samples: int = 1000,
    contrast: float = 0.25,
    max_reject: float = 0.5,
    min_npixels: int = 5,
    krej: float = 2.5,
    max_iterations: int = 5,
) -> tuple[float, float]:
    """IRAF's zscale limits of the finite values of ``data`` (astropy's ``ZScaleInterval``).

    About ``n_samples`` values, taken at a regular stride, are sorted and a line is fitted
    to them with iterative rejection; the limits are the median -/+ the line's slope over
    ``contrast``, clipped to the samples' range.
    """
    values = np.asarray(data).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    stride = int(max(1.0, values.size / n_samples))
    samples = np.sort(values[::stride][:n_samples]).astype(np.float64)
    npix = len(samples)
    vmin, vmax = float(samples[0]), float(samples[-1])
    minpix = max(min_npixels, int(npix * max_reject))
    x = np.arange(npix)
    ngoodpix, last_ngoodpix = npix, npix + 1
    badpix = np.zeros(npix, dtype=bool)
    kernel = np.ones(max(1, int(npix * 0.01)), dtype=bool)
    fit = np.zeros(2)
    for _ in range(max_iterations):
        if ngoodpix >= last_ngoodpix or ngoodpix < minpix:
            break
        fit = np.polyfit(x, samples, deg=1, w=(~badpix).astype(int))
        flat = samples - np.poly1d(fit)(x)
        threshold = krej * flat[~badpix].std()
        badpix[(flat < -threshold) | (flat > threshold)] = True
        badpix = np.convolve(badpix, kernel, mode="same")
        last_ngoodpix, ngoodpix = ngoodpix, int(np.sum(~badpix))
    if ngoodpix >= minpix:
        slope = fit[0] / contrast if contrast > 0 else fit[0]
        centre = (npix - 1) // 2
        median = float(np.median(samples))
        vmin = max(vmin, median - (centre - 1) * slope)
        vmax = min(vmax, median + (npix - centre) * slope)
    return vmin, vmax


def display_limits(data: npt.NDArray[np.floating]) -> tuple[float, float]:
    """``(lo, hi)`` of the stretch: zscale's lower limit, and the larger of the 99.9th
    percentile and ``ZSCALE_RANGES`` zscale ranges above it, at most the maximum (the
    brightest pixel is black); ``hi > lo`` always (a constant or blank image gets a range)."""
    finite = np.asarray(data).ravel()
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = zscale_limits(finite)
    sample = finite[:: max(1, finite.size // _PERCENTILE_SAMPLE)]
    wide = min(lo + ZSCALE_RANGES * (hi - lo), float(finite.max()))
    hi = max(wide, float(np.percentile(sample, UPPER_PERCENTILE)))
    if not hi > lo:
        hi = lo + (abs(lo) if lo else 1.0)
    return float(lo), float(hi)


def asinh_level(
    values: npt.ArrayLike, lo: float, hi: float, softening: float = ASINH_SOFTENING
) -> npt.NDArray[np.float64]:
    """The stretched level in [0, 1] of ``values`` (NaN stays NaN); the colour bar uses it too."""
    with np.errstate(invalid="ignore"):
        scaled = np.clip((np.asarray(values, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return np.asarray(np.arcsinh(scaled / softening) / math.asinh(1.0 / softening), dtype=np.float64)


def grey_levels(
    data: npt.NDArray[np.floating], lo: float, hi: float, levels: int = GREY_LEVELS
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Palette indices ``0..levels-1`` of ``data`` (0 = white = faint, bright is dark, the
    astronomers' inverted grey) and the mask of blank pixels."""
    level = asinh_level(data, lo, hi)
    blank = ~np.isfinite(level)
    index = np.round(np.where(blank, 0.0, level) * (levels - 1))
    return np.asarray(index, dtype=np.uint8), blank


def nice_step(span: float, max_ticks: int) -> float:
    """The smallest 1, 2 or 5 x 10^k step that puts at most ``max_ticks`` ticks on ``span``."""
    if not (span > 0 and math.isfinite(span)):
        return 1.0
    raw = span / max(1, max_ticks)
    power = 10.0 ** math.floor(math.log10(raw))
    for mantissa in (1.0, 2.0, 5.0, 10.0):
        if mantissa * power >= raw:
            return mantissa * power
    return 10.0 * power
