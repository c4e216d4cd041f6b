"""Preview PNG: the image on WCS axes with the catalogue's sources drawn on it.

Drawing a 4096^2 image at full resolution costs seconds and hundreds of MB for a picture
shown at under 1000 px, so the image is block-averaged (NaN-aware) to at most
``max_pixels`` per side first; the WCS is sliced the same way, so sources still land on
the right pixels. matplotlib is imported here only (the Agg backend, no display).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.table import Table

from caesar_runner.catalogs.image import ImageData

__all__ = ["decimate", "private_matplotlib_config", "render_preview"]


@contextmanager
def private_matplotlib_config() -> Iterator[None]:
    """Give matplotlib a throw-away config/cache directory unless one is set.

    Job steps run with ``HOME`` = the job directory, where matplotlib would leave its
    font cache among the job's outputs; a shared fixed path under /tmp could be
    pre-created by another user. A private temporary directory, removed on exit, costs
    one font scan (well under a second).
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
    finite = np.isfinite(blocks)
    sums = np.where(finite, blocks, 0).sum(axis=(1, 3), dtype=np.float64)
    counts = finite.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        small = np.where(counts > 0, sums / counts, np.nan)
    return small.astype(np.float32), factor


def render_preview(image: ImageData, catalog: Table, path: Path, max_pixels: int = 1024) -> None:
    """Draw ``image`` with ``catalog``'s ellipses (or markers) to the PNG ``path``.

    Colour scale: asinh between the 0.5th and 99.8th percentiles of the finite pixels,
    which shows the noise and keeps bright sources from saturating the rest.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.visualization import AsinhStretch, ImageNormalize

    small, factor = decimate(image.data, max_pixels)
    wcs = image.wcs[::factor, ::factor] if factor > 1 else image.wcs
    finite = small[np.isfinite(small)]
    if finite.size:
        lo, hi = np.percentile(finite, [0.5, 99.8])
        if not hi > lo:
            hi = lo + 1.0
    else:
        lo, hi = 0.0, 1.0
    norm = ImageNormalize(vmin=float(lo), vmax=float(hi), stretch=AsinhStretch(0.1))

    fig = plt.figure(figsize=(8, 8), dpi=100)
    try:
        ax = fig.add_subplot(projection=wcs)
        ax.imshow(small, origin="lower", cmap="gray_r", norm=norm, interpolation="nearest")
        ax.set_xlabel("RA")
        ax.set_ylabel("Dec")
        finder = catalog.meta.get("finder", "")
        ax.set_title(f"{finder}: {len(catalog)} sources")
        if len(catalog):
            _draw_sources(ax, wcs, catalog, 1.0 / (image.pixel_deg * 3600.0 * factor))
        fig.savefig(path, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)


def _draw_sources(ax: Any, wcs: Any, catalog: Table, scale: float) -> None:
    """All ellipses as one collection (one patch per source costs seconds at 2000 sources).

    ``scale`` converts arcsec to preview pixels; sources without a size get a beam-free
    marker. Matplotlib's ellipse angle is counter-clockwise from +x with ``widths`` along
    it, so the minor axis goes there and PA (from north, +y, through east, -x) is the angle.
    """
    from matplotlib.collections import EllipseCollection

    x, y = wcs.world_to_pixel_values(np.asarray(catalog["ra"]), np.asarray(catalog["dec"]))
    maj, mn, pa = (np.asarray(catalog[c], dtype=np.float64) for c in ("maj", "min", "pa"))
    ok = np.isfinite(x) & np.isfinite(y)
    sized = ok & np.isfinite(maj) & np.isfinite(mn) & (maj > 0)
    if sized.any():
        ellipses = EllipseCollection(
            np.maximum(mn[sized] * scale, 2.0),
            np.maximum(maj[sized] * scale, 2.0),
            np.where(np.isfinite(pa[sized]), pa[sized], 0.0),
            units="xy",
            offsets=np.column_stack([x[sized], y[sized]]),
            offset_transform=ax.transData,
            facecolors="none",
            edgecolors="tab:red",
            linewidths=0.8,
        )
        ax.add_collection(ellipses)
    point = ok & ~sized
    if point.any():
        ax.plot(x[point], y[point], "+", color="tab:red", ms=6, ls="none")
