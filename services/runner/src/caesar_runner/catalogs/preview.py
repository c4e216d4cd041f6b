"""Preview PNG and its geometry: the image on RA/Dec axes with the catalogue's sources.

The preview is made for every job, so it must cost a small fraction of the finder.
matplotlib with WCSAxes draws this picture too, but importing it (plus
``astropy.visualization``, which imports matplotlib) and drawing cost about 1 CPU second
(1.5-2 s wall), four times what sfind needs to find the sources of a 2048^2 map; this
preview costs about 0.1 s (``bench/bench_preview.py``). So:

* the image is block-averaged to at most ``max_pixels`` per side *before* anything else
  (:mod:`.display`), and the stretch (zscale + asinh) works on that small array;
* the layout, the sexagesimal ticks, the beam and the source ellipses are computed as data
  (:mod:`.preview_layout`, :mod:`.skyaxes`, :mod:`.skyshapes`);
* Pillow (imported in ~0.03 s) draws that on a palette image (one byte per pixel: the PNG
  encodes 4x faster than RGB), written to a temporary name and renamed.

Next to ``preview.png``, :func:`write_preview` writes ``preview.json`` (the PNG's size,
where the image sits in it, the WCS, BUNIT and beam), so a browser can draw and pick
sources over the PNG itself.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from caesar_runner.catalogs.display import GREY_LEVELS, asinh_level, decimate, display_limits
from caesar_runner.catalogs.image import ImageData, ImageError, header_beam_deg, plane
from caesar_runner.catalogs.preview_layout import PreviewImage, PreviewScene, Role, Text, build_scene

__all__ = [
    "FONT_SIZES",
    "PreviewImage",
    "decimate",
    "draw_scene",
    "grid_step_deg",
    "measure_text",
    "preview_image",
    "private_matplotlib_config",
    "read_preview_image",
    "render_preview",
    "scene_for",
    "stretch",
    "text_box",
    "write_preview",
]

# Palette: GREY_LEVELS greys from white (faint) to black (bright), then drawing colours.
RED: Final = GREY_LEVELS
GRID: Final = GREY_LEVELS + 1
BLACK: Final = GREY_LEVELS + 2
WHITE: Final = GREY_LEVELS + 3
BLANK: Final = GREY_LEVELS + 4
BEAM: Final = GREY_LEVELS + 5
_PALETTE: Final = [
    *(v for i in range(GREY_LEVELS) for v in (round(255 - i * 255 / (GREY_LEVELS - 1)),) * 3),
    *(214, 39, 40),  # sources
    *(110, 150, 205),  # RA/Dec grid
    *(0, 0, 0),
    *(255, 255, 255),
    *(236, 226, 198),  # blank pixels: not a grey, so not mistaken for faint emission
    *(255, 170, 40),  # the beam
]
FONT_SIZES: Final[dict[Role, int]] = {"tick": 12, "label": 13, "title": 14}
_FONT_FILES: Final = (
    "DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)


@contextmanager
def private_matplotlib_config() -> Iterator[None]:
    """Give matplotlib a throw-away config/cache directory unless one is set.

    The preview does not use matplotlib, but PyBDSF and AegeanTools import it; a job step
    that does should not leave a font cache among the job's outputs, and a shared fixed
    path under /tmp could be pre-created by another user. A private temporary directory,
    removed on exit, costs one font scan (well under a second).
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


def stretch(data: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """Grey values of ``data`` as the preview shows them: zscale + asinh, inverted (bright
    is black), blank pixels white."""
    lo, hi = display_limits(data)
    level = asinh_level(data, lo, hi)
    grey = np.where(np.isfinite(level), 255.0 * (1.0 - level), 255.0)
    return np.asarray(np.round(grey), dtype=np.uint8)


_DECIMAL_STEPS_DEG: Final = (
    *(m * 10.0**e for e in range(-5, 1) for m in (1.0, 2.0, 5.0)),
    10.0,
    15.0,
    30.0,
    45.0,
    90.0,
)


def grid_step_deg(span_deg: float, max_lines: int = 6) -> float:
    """Deprecated: the decimal-degree grid step of the previous preview.

    The preview now uses sexagesimal steps (:func:`.skyaxes.choose_step`); this stays only
    for callers of the old module and can go with them.
    """
    for step in _DECIMAL_STEPS_DEG:
        if span_deg / step <= max_lines:
            return step
    return _DECIMAL_STEPS_DEG[-1]


@functools.cache
def _font_path() -> str | None:
    """DejaVu Sans (it has the degree, prime and minus glyphs): matplotlib's copy (a runner dependency, found
    without importing matplotlib), else the system's."""
    spec = importlib.util.find_spec("matplotlib")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    candidates = [Path(r) / "mpl-data" / "fonts" / "ttf" / _FONT_FILES[0] for r in roots]
    candidates += [Path(p) for p in _FONT_FILES[1:]]
    return next((str(p) for p in candidates if p.is_file()), None)


@functools.cache
def _font(role: Role) -> Any:
    from PIL import ImageFont

    path = _font_path()
    if path is not None:
        return ImageFont.truetype(path, FONT_SIZES[role])
    return ImageFont.load_default(size=FONT_SIZES[role])


def measure_text(text: str, role: Role) -> tuple[int, int]:
    """``(width, height)`` of ``text`` in the preview's font for ``role``."""
    font = _font(role)
    ascent, descent = font.getmetrics()
    return math.ceil(font.getlength(text)), int(ascent + descent)


def text_box(text: Text) -> tuple[float, float, float, float]:
    """The PNG box ``(x0, y0, x1, y1)`` a scene's text covers when drawn (for overlap checks)."""
    if text.vertical:
        width, height = measure_text(text.text, text.role)
        return text.x, text.y - width / 2 - 1, text.x + height + 2, text.y + width / 2 + 1
    left, top, right, bottom = _font(text.role).getbbox(text.text, anchor=text.anchor)
    return text.x + left, text.y + top, text.x + right, text.y + bottom


def preview_image(image: ImageData) -> PreviewImage:
    """The preview's view of an image a finder loaded."""
    bunit = str(image.header.get("BUNIT", "")).strip() or None
    return PreviewImage(image.data, image.wcs, bunit, image.beam_deg)


def read_preview_image(path: str | Path, beam_deg: tuple[float, float, float] | None = None) -> PreviewImage:
    """The first 2-D plane of ``path`` with its celestial WCS if it has one.

    Unlike :func:`.image.load_image`, an image without a celestial WCS is accepted: its
    preview has pixel axes.

    Raises
    ------
    ImageError
        No HDU with at least 2-D data.
    """
    with fits.open(path, memmap=False) as hdul:
        hdu = next((h for h in hdul if h.data is not None and getattr(h.data, "ndim", 0) >= 2), None)
        if hdu is None:
            raise ImageError(f"{Path(path).name}: no image HDU with 2 or more axes")
        header = hdu.header.copy()
        data = plane(hdu.data)
    wcs: WCS | None = None
    try:
        celestial = WCS(header, naxis=2).celestial
        if celestial.naxis == 2 and celestial.has_celestial:
            wcs = celestial
    except Exception:  # noqa: BLE001 - any unreadable WCS: pixel axes rather than no preview
        wcs = None
    bunit = str(header.get("BUNIT", "")).strip() or None
    return PreviewImage(data, wcs, bunit, beam_deg or header_beam_deg(header))


def _column(catalog: Table, name: str) -> npt.NDArray[np.float64]:
    if name not in catalog.colnames:
        return np.full(len(catalog), np.nan)
    values = catalog[name]
    if hasattr(values, "filled"):
        values = values.astype(np.float64).filled(np.nan)
    return np.asarray(values, dtype=np.float64)


def scene_for(image: ImageData | PreviewImage, catalog: Table, max_pixels: int = 800) -> PreviewScene:
    """Lay out the preview of ``image`` with ``catalog``'s sources (harmonised columns)."""
    view = preview_image(image) if isinstance(image, ImageData) else image
    finder = catalog.meta.get("finder", "")
    title = f"{finder}: {len(catalog)} sources" if finder else f"{len(catalog)} sources"
    ra, dec, maj, minor, pa = (_column(catalog, c) for c in ("ra", "dec", "maj", "min", "pa"))
    sources = (ra, dec, maj, minor, pa)
    return build_scene(view, sources, title, measure_text, max_pixels, unicode=_font_path() is not None)


def _ink_text(ink: Any, text: str, role: Role, x: float, y: float, anchor: str, vertical: bool) -> None:
    """Draw ``text`` antialiased on the ``L`` layer ``ink``; a ``vertical`` text reads bottom
    to top, its left edge at ``x`` and centred on ``y``."""
    from PIL import Image, ImageDraw

    if not vertical:
        ImageDraw.Draw(ink).text((x, y), text, fill=255, font=_font(role), anchor=anchor)
        return
    width, height = measure_text(text, role)
    strip = Image.new("L", (width + 2, height + 2), 0)
    ImageDraw.Draw(strip).text((1, 1), text, fill=255, font=_font(role))
    rotated = strip.rotate(90, expand=True)
    ink.paste(rotated, (round(x), round(y - rotated.height / 2)))


def draw_scene(scene: PreviewScene) -> Any:
    """The scene as a Pillow palette image."""
    from PIL import Image, ImageDraw

    x0, y0, x1, y1 = scene.axes_box
    ox, oy = round(x0), round(y0)
    index = np.where(scene.blank, BLANK, scene.grey).astype(np.uint8)[::-1]
    if scene.zoom > 1:
        index = np.repeat(np.repeat(index, scene.zoom, axis=0), scene.zoom, axis=1)
    axes = Image.fromarray(np.ascontiguousarray(index), mode="L")
    axes.putpalette(_PALETTE)
    draw = ImageDraw.Draw(axes)
    for line in scene.grid_lines:
        draw.line([(x - ox, y - oy) for x, y in line], fill=GRID, width=1)
    if scene.markers is not None:  # flat [x0, y0, x1, y1, ...] rows: no per-point Python tuples
        outlines = np.stack([scene.markers.outline_x - ox, scene.markers.outline_y - oy], axis=-1)
        for row in outlines.reshape(len(outlines), -1).tolist():
            draw.polygon(row, outline=RED)
    if scene.beam is not None and scene.beam_box is not None:
        bx0, by0, bx1, by1 = scene.beam_box
        draw.rectangle([bx0 - ox, by0 - oy, bx1 - ox, by1 - oy], fill=WHITE, outline=BLACK)
        points = [
            (x - ox, y - oy)
            for x, y in zip(scene.beam.outline_x[0].tolist(), scene.beam.outline_y[0].tolist(), strict=True)
        ]
        draw.polygon(points, fill=BEAM, outline=BLACK)

    picture = Image.new("P", (scene.width, scene.height), WHITE)
    picture.putpalette(_PALETTE)
    picture.paste(axes, (ox, oy))
    draw = ImageDraw.Draw(picture)
    draw.rectangle([x0 - 1, y0 - 1, x1, y1], outline=BLACK)
    for mx0, my0, mx1, my1 in scene.tick_marks:
        draw.line([(mx0, my0), (mx1, my1)], fill=BLACK)
    if scene.colorbar_box is not None:
        cx0, cy0, cx1, cy1 = (round(v) for v in scene.colorbar_box)
        ramp = np.linspace(GREY_LEVELS - 1, 0, cy1 - cy0).round().astype(np.uint8)[:, None]
        bar = Image.fromarray(np.ascontiguousarray(np.repeat(ramp, cx1 - cx0, axis=1)), mode="L")
        bar.putpalette(_PALETTE)
        picture.paste(bar, (cx0, cy0))
        draw.rectangle([cx0 - 1, cy0 - 1, cx1, cy1], outline=BLACK)
        for y, _ in scene.colorbar_ticks:
            draw.line([(cx1 - 4, y), (cx1 + 2, y)], fill=BLACK)
    # Text is drawn antialiased on a separate layer and blended into the white margins
    # through the palette's greys (a palette image cannot blend colours itself).
    ink = Image.new("L", picture.size, 0)
    for text in scene.texts:
        _ink_text(ink, text.text, text.role, text.x, text.y, text.anchor, text.vertical)
    pixels = np.asarray(picture)
    alpha = np.asarray(ink)
    shade = (alpha.astype(np.uint16) * (GREY_LEVELS - 1) + 127) // 255
    inked = (alpha > 0) & (pixels == WHITE)
    blended = np.where(inked, shade, pixels).astype(np.uint8)
    picture = Image.fromarray(blended, mode="L")
    picture.putpalette(_PALETTE)
    return picture


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def render_preview(
    image: ImageData | PreviewImage, catalog: Table, path: Path, max_pixels: int = 800
) -> PreviewScene:
    """Draw ``image`` with ``catalog``'s sources to the PNG ``path``; return the scene."""
    scene = scene_for(image, catalog, max_pixels)
    picture = draw_scene(scene)
    _atomic_write(Path(path), lambda tmp: picture.save(tmp, format="PNG", compress_level=3))
    return scene


def write_preview(
    png_path: Path,
    json_path: Path,
    catalog: Table,
    image: ImageData | PreviewImage | None = None,
    input_path: Path | None = None,
    max_pixels: int = 800,
) -> PreviewScene:
    """Write ``preview.png`` and its geometry ``preview.json`` (see
    :meth:`.preview_layout.PreviewScene.geometry`); the image is read from ``input_path``
    (accepting one without a WCS) unless given.

    Raises
    ------
    ImageError
        The input has no 2-D image.
    """
    if image is None:
        if input_path is None:
            raise ValueError("write_preview needs an image or an input path")
        image = read_preview_image(input_path)
    scene = render_preview(image, catalog, png_path, max_pixels)
    text = json.dumps(scene.geometry(), indent=1, allow_nan=False)
    _atomic_write(Path(json_path), lambda tmp: Path(tmp).write_text(text))
    return scene
