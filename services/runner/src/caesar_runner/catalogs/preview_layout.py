"""Everything the preview shows, in PNG pixel coordinates, before anything is drawn.

The preview is drawn with Pillow (matplotlib with WCSAxes gives the same picture but
costs ten times more CPU, more than sfind needs for a 2048^2 map: ``bench/bench_preview.py``),
so the layout that matplotlib's constrained layout would do is done here: margins are
measured from the actual labels, so the title, tick labels, axis labels and the colour bar
never overlap. The result, a :class:`PreviewScene`, is plain data: the renderer draws it,
the tests inspect it, and :meth:`PreviewScene.geometry` is the ``preview.json`` with which
a browser draws sources over the PNG itself.

Coordinates: the displayed grid is the image block-averaged by ``binning`` (and, for small
images, magnified by a whole ``zoom``); its 0-based pixel ``(x, y)`` (``y`` up, FITS order)
has its centre at PNG ``(x0 + (x + 0.5) * zoom, y1 - (y + 0.5) * zoom)`` where
``axes_box = (x0, y0, x1, y1)`` (PNG origin top-left).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

from caesar_runner.catalogs.display import (
    ASINH_SOFTENING,
    asinh_level,
    decimate,
    display_limits,
    grey_levels,
    zoom_factor,
)
from caesar_runner.catalogs.skyaxes import MINUS, CelestialWcs, Tick, grid_lines, pixel_ticks, sky_ticks
from caesar_runner.catalogs.skyshapes import Ellipses, corner_beam, sky_ellipses

__all__ = [
    "GEOMETRY_VERSION",
    "PreviewImage",
    "PreviewScene",
    "Text",
    "TextMeasure",
    "build_scene",
    "colorbar_label",
]

Role = Literal["tick", "label", "title"]
Box = tuple[float, float, float, float]
Sources = tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]
"""``(ra, dec, maj, min, pa)``: degrees, FWHM arcsec, degrees east of north."""
GEOMETRY_VERSION: Final = 1
TICK_LENGTH: Final = 5
PAD: Final = 8
TICK_GAP: Final = 4
COLORBAR_GAP: Final = 14
COLORBAR_WIDTH: Final = 16
MIN_MARKER_SEMI_PX: Final = 1.5
"""Smallest drawn semi-axis of a source or the beam, in PNG pixels (a visible ring)."""


class TextMeasure(Protocol):
    """``(width, height)`` in PNG pixels of ``text`` set horizontally in the font of ``role``."""

    def __call__(self, text: str, role: Role) -> tuple[int, int]: ...


class Wcs(CelestialWcs, Protocol):
    """The celestial WCS of the image (:class:`astropy.wcs.WCS`)."""

    def __getitem__(self, item: Any) -> Wcs: ...

    def to_header(self) -> Any: ...


@dataclass(frozen=True)
class PreviewImage:
    """What the preview needs of an image: the first plane, and what may be missing.

    ``wcs`` is ``None`` for an image without a celestial WCS (pixel axes, no markers);
    ``beam_deg`` is ``(bmaj, bmin, bpa)`` in degrees or ``None``; ``bunit`` the header's
    BUNIT or ``None``.
    """

    data: npt.NDArray[np.float32]
    wcs: Wcs | None
    bunit: str | None
    beam_deg: tuple[float, float, float] | None


@dataclass(frozen=True)
class Text:
    """A text at PNG ``(x, y)`` with a Pillow ``anchor``; ``vertical`` reads bottom to top."""

    x: float
    y: float
    text: str
    role: Role
    anchor: str
    vertical: bool = False


@dataclass(frozen=True)
class PreviewScene:
    """The preview as data (PNG pixel coordinates, origin top-left); see the module doc."""

    width: int
    height: int
    axes_box: Box
    grid_shape: tuple[int, int]
    source_shape: tuple[int, int]
    binning: int
    zoom: int
    grey: npt.NDArray[np.uint8]
    blank: npt.NDArray[np.bool_]
    limits: tuple[float, float]
    texts: list[Text]
    tick_marks: list[tuple[float, float, float, float]]
    grid_lines: list[list[tuple[float, float]]]
    markers: Ellipses | None
    n_sources: int
    colorbar_box: Box | None
    colorbar_ticks: list[tuple[float, str]]
    beam: Ellipses | None = None
    beam_box: Box | None = None
    wcs_cards: dict[str, Any] | None = None
    bunit: str | None = None
    beam_deg: tuple[float, float, float] | None = None

    def to_png(
        self, x: npt.ArrayLike, y: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """PNG coordinates of grid pixel ``(x, y)`` (0-based, ``y`` up)."""
        x0, _, _, y1 = self.axes_box
        px = x0 + (np.asarray(x, dtype=np.float64) + 0.5) * self.zoom
        py = y1 - (np.asarray(y, dtype=np.float64) + 0.5) * self.zoom
        return px, py

    def geometry(self) -> dict[str, Any]:
        """The ``preview.json`` document: what a client needs to draw on the PNG."""
        ny, nx = self.grid_shape
        beam = None
        if self.beam_deg is not None:
            bmaj, bmin, bpa = self.beam_deg
            beam = {"bmaj_arcsec": bmaj * 3600.0, "bmin_arcsec": bmin * 3600.0, "bpa_deg": bpa}
        lo, hi = self.limits
        return {
            "version": GEOMETRY_VERSION,
            "width": self.width,
            "height": self.height,
            "image_shape": [ny, nx],
            "axes_box": [float(v) for v in self.axes_box],
            "pixel_to_png": (
                "png_x = x0 + (x + 0.5) * (x1 - x0) / nx; png_y = y1 - (y + 0.5) * (y1 - y0) / ny, "
                "for the 0-based pixel (x, y) of image_shape (the FITS pixel minus 1) that the wcs gives"
            ),
            "binning": self.binning,
            "zoom": self.zoom,
            "source_shape": list(self.source_shape),
            "wcs": self.wcs_cards,
            "bunit": self.bunit,
            "beam": beam,
            "stretch": {
                "kind": "asinh",
                "lo": lo,
                "hi": hi,
                "softening": ASINH_SOFTENING,
                "interval": "zscale",
            },
            "colorbar_box": None if self.colorbar_box is None else [float(v) for v in self.colorbar_box],
        }


def colorbar_label(bunit: str | None) -> str:
    """The colour bar's label: the image's BUNIT, or says there is none."""
    return bunit if bunit else "pixel value (no BUNIT)"


def _format_value(value: float) -> str:
    """A colour-bar value (one significant figure, as :func:`_colorbar_values` rounds them),
    with a real minus sign."""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    text = f"{value:.{max(0, -magnitude)}f}" if -5 <= magnitude < 5 else f"{value:.0e}"
    return text.replace("-", MINUS)


def _round_sig(value: float) -> float:
    """``value`` rounded to one significant figure."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    return round(value, -math.floor(math.log10(abs(value))))


def _colorbar_values(lo: float, hi: float) -> list[float]:
    """Round values spread evenly along the asinh bar (linear ones would crowd at the top).

    Zero is kept when in range (where the emission starts), and values too close to it to
    be told apart from it are dropped.
    """
    a = ASINH_SOFTENING
    span = math.asinh(1.0 / a)
    values = {_round_sig(lo + (hi - lo) * a * math.sinh(level * span)) for level in np.linspace(0.0, 1.0, 7)}
    if lo < 0 < hi:
        values = {v for v in values if abs(v) >= 0.02 * (hi - lo)} | {0.0}
    return sorted(v for v in values if lo <= v <= hi)


def _wcs_cards(wcs: Wcs) -> dict[str, Any]:
    """The WCS as FITS header cards (JSON-safe: no NaN, no COMMENT/HISTORY)."""
    cards: dict[str, Any] = {}
    for key, value in wcs.to_header().items():
        if key in ("COMMENT", "HISTORY", ""):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        if isinstance(value, bool | int | float | str):
            cards[key] = value
    return cards


def _drop_overlaps(labels: list[tuple[float, float, Text]]) -> list[Text]:
    """Keep labels (sorted by their centre along the axis) that do not overlap the last kept."""
    kept: list[Text] = []
    end = -math.inf
    for centre, half, text in sorted(labels, key=lambda item: item[0]):
        if centre - half >= end + 4:
            kept.append(text)
            end = centre + half
    return kept


def _box_of(text: Text, measure: TextMeasure) -> Box:
    """The box ``text`` covers, from its size and anchor (``vertical``: left edge at ``x``,
    centred on ``y``)."""
    width, height = measure(text.text, text.role)
    if text.vertical:
        return text.x, text.y - width / 2, text.x + height, text.y + width / 2
    horizontal, vertical = text.anchor[0], text.anchor[1]
    left = {"l": text.x, "m": text.x - width / 2, "r": text.x - width}[horizontal]
    top = {"t": text.y, "m": text.y - height / 2, "d": text.y - height}.get(vertical, text.y - height)
    return left, top, left + width, top + height


def _without_collisions(texts: list[Text], measure: TextMeasure) -> list[Text]:
    """``texts`` in order, less any that would overlap one kept before it (a tick label in a
    corner against the other axis' last label, say): the first ones have priority."""
    kept: list[Text] = []
    boxes: list[Box] = []
    for text in texts:
        box = _box_of(text, measure)
        if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes):
            kept.append(text)
            boxes.append(box)
    return kept


@dataclass(frozen=True)
class _Frame:
    """Where the displayed grid sits in the PNG: grid pixel -> PNG pixel."""

    box: Box
    zoom: int

    def x(self, grid_x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.asarray(self.box[0] + (np.asarray(grid_x, dtype=np.float64) + 0.5) * self.zoom)

    def y(self, grid_y: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.asarray(self.box[3] - (np.asarray(grid_y, dtype=np.float64) + 0.5) * self.zoom)

    def ellipses(self, grid: Ellipses, keep: npt.NDArray[np.bool_]) -> Ellipses:
        """The ``grid`` ellipses that ``keep`` selects, in PNG pixels."""
        return Ellipses(
            x=self.x(grid.x[keep]),
            y=self.y(grid.y[keep]),
            outline_x=self.x(grid.outline_x[keep]),
            outline_y=self.y(grid.outline_y[keep]),
            semi_major_px=grid.semi_major_px[keep] * self.zoom,
            semi_minor_px=grid.semi_minor_px[keep] * self.zoom,
        )


def _axis_ticks(
    ticks: list[Tick], frame: _Frame, measure: TextMeasure
) -> tuple[list[tuple[float, float, float, float]], list[Text]]:
    """Inward tick marks on all four sides, labels below and left; overlapping labels dropped."""
    x0, y0, x1, y1 = frame.box
    _, tick_h = measure("0", "tick")
    marks: list[tuple[float, float, float, float]] = []
    bottom: list[tuple[float, float, Text]] = []
    left: list[tuple[float, float, Text]] = []
    for tick in ticks:
        if tick.edge in ("bottom", "top"):
            x = float(frame.x(tick.position))
            if not x0 <= x <= x1:
                continue
            y = y1 if tick.edge == "bottom" else y0
            marks.append((x, y, x, y - TICK_LENGTH if tick.edge == "bottom" else y + TICK_LENGTH))
            if tick.label:
                half = measure(tick.label, "tick")[0] / 2
                bottom.append((x, half, Text(x, y1 + TICK_GAP, tick.label, "tick", "mt")))
        else:
            y = float(frame.y(tick.position))
            if not y0 <= y <= y1:
                continue
            x = x0 if tick.edge == "left" else x1
            marks.append((x, y, x + TICK_LENGTH if tick.edge == "left" else x - TICK_LENGTH, y))
            if tick.label:
                left.append((y, tick_h / 2, Text(x0 - TICK_GAP, y, tick.label, "tick", "rm")))
    return marks, _drop_overlaps(bottom) + _drop_overlaps(left)


def _colorbar(
    frame: _Frame, limits: tuple[float, float], values: list[float], labels: list[str], measure: TextMeasure
) -> tuple[Box, list[tuple[float, str]], list[Text]]:
    """The bar right of the image, its ticks at the stretched levels of ``values``, their labels."""
    _, y0, x1, y1 = frame.box
    _, tick_h = measure("0", "tick")
    box: Box = (x1 + COLORBAR_GAP, y0, x1 + COLORBAR_GAP + COLORBAR_WIDTH, y1)
    ticks: list[tuple[float, str]] = []
    texts: list[tuple[float, float, Text]] = []
    for value, label in zip(values, labels, strict=True):
        y = y1 - float(asinh_level(value, *limits)) * (y1 - y0)
        ticks.append((y, label))
        texts.append((y, tick_h / 2, Text(box[2] + TICK_GAP, y, label, "tick", "lm")))
    return box, ticks, _drop_overlaps(texts)


def _sources(wcs: Wcs, shape: tuple[int, int], frame: _Frame, sources: Sources) -> Ellipses | None:
    """The ellipses of the sources whose centre is on the image, in PNG pixels."""
    ny, nx = shape
    ra, dec, maj, minor, pa = sources
    if not np.size(ra):
        return None
    found = sky_ellipses(
        wcs, ra, dec, maj, minor, pa, n_points=24, min_semi_px=MIN_MARKER_SEMI_PX / frame.zoom
    )
    inside = np.isfinite(found.x) & np.isfinite(found.y)
    inside &= (found.x >= -0.5) & (found.x <= nx - 0.5) & (found.y >= -0.5) & (found.y <= ny - 0.5)
    return frame.ellipses(found, inside)


def _beam(
    wcs: Wcs, shape: tuple[int, int], frame: _Frame, beam_deg: tuple[float, float, float] | None
) -> tuple[Ellipses | None, Box | None]:
    """The beam ellipse in the bottom-left corner and the white box behind it, in PNG pixels."""
    if beam_deg is None:
        return None, None
    placed = corner_beam(wcs, shape, beam_deg, 6.0 / frame.zoom, MIN_MARKER_SEMI_PX / frame.zoom)
    if placed is None:
        return None, None
    bx0, by0, bx1, by1 = placed.box
    box = (float(frame.x(bx0)), float(frame.y(by1)), float(frame.x(bx1)), float(frame.y(by0)))
    return frame.ellipses(placed.ellipse, np.ones(1, dtype=bool)), box


def build_scene(
    image: PreviewImage,
    sources: Sources,
    title: str,
    measure: TextMeasure,
    max_pixels: int = 800,
    min_pixels: int = 480,
    unicode: bool = True,
) -> PreviewScene:
    """Lay out the preview of ``image`` with ``sources`` = ``(ra, dec, maj, min, pa)``
    (degrees; ``maj``/``min`` FWHM in arcsec, ``pa`` east of north).

    The image is block-averaged to at most ``max_pixels`` per side *first* (the stretch
    and drawing then work at display size) and magnified by a whole factor when smaller
    than ``min_pixels``. Margins are sized from the labels actually shown.
    """
    small, binning = decimate(image.data, max_pixels)
    zoom = zoom_factor(small.shape, min_pixels, max_pixels)
    wcs = image.wcs[::binning, ::binning] if (image.wcs is not None and binning > 1) else image.wcs
    ny, nx = small.shape
    width_px, height_px = nx * zoom, ny * zoom
    lo, hi = display_limits(small)
    grey, blank = grey_levels(small, lo, hi)
    n_sources = int(np.size(sources[0]))
    if wcs is None and n_sources:
        title = f"{title} (not drawn: the image has no celestial WCS)"

    # Ticks and colour-bar values first: their labels size the margins.
    _, tick_h = measure("0", "tick")
    max_y_ticks = max(2, height_px // (3 * tick_h))
    lines: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = []
    if wcs is not None:
        max_x_ticks = max(2, width_px // (measure("00h00m00s", "tick")[0] + 24))
        ticks, ra_step, dec_step = sky_ticks(wcs, (ny, nx), max_x_ticks, max_y_ticks, unicode)
        lines = grid_lines(wcs, (ny, nx), ra_step, dec_step)
        x_label, y_label = "RA (J2000)", "Dec (J2000)"
    else:
        ticks = pixel_ticks((ny, nx), binning, max(2, width_px // 60), max_y_ticks)
        x_label, y_label = "x (pixel)", "y (pixel)"
    cb_values = _colorbar_values(lo, hi)
    cb_labels = [_format_value(v) for v in cb_values]
    left_w = max((measure(t.label, "tick")[0] for t in ticks if t.edge == "left" and t.label), default=0)
    cb_w = max((measure(t, "tick")[0] for t in cb_labels), default=0)
    _, label_h = measure(y_label, "label")
    title_w, title_h = measure(title, "title")
    left = PAD + label_h + PAD + left_w + TICK_GAP
    top = PAD + title_h + PAD
    right = COLORBAR_GAP + COLORBAR_WIDTH + TICK_GAP + cb_w + PAD + label_h + PAD
    width = max(left + width_px + right, title_w + 2 * PAD)
    height = top + height_px + TICK_GAP + tick_h + PAD + label_h + PAD
    frame = _Frame((float(left), float(top), float(left + width_px), float(top + height_px)), zoom)
    x0, y0, x1, y1 = frame.box

    marks, tick_texts = _axis_ticks(ticks, frame, measure)
    cb_box, cb_ticks, cb_texts = _colorbar(frame, (lo, hi), cb_values, cb_labels, measure)
    texts = _without_collisions(
        [
            Text((x0 + x1) / 2, PAD, title, "title", "mt"),
            Text((x0 + x1) / 2, height - PAD, x_label, "label", "md"),
            Text(PAD, (y0 + y1) / 2, y_label, "label", "lm", vertical=True),
            Text(
                width - PAD - label_h,
                (y0 + y1) / 2,
                colorbar_label(image.bunit),
                "label",
                "lm",
                vertical=True,
            ),
            *tick_texts,
            *cb_texts,
        ],
        measure,
    )
    markers, beam, beam_box = None, None, None
    if wcs is not None:
        markers = _sources(wcs, (ny, nx), frame, sources)
        beam, beam_box = _beam(wcs, (ny, nx), frame, image.beam_deg)
    return PreviewScene(
        width=int(width),
        height=int(height),
        axes_box=frame.box,
        grid_shape=(ny, nx),
        source_shape=(int(image.data.shape[0]), int(image.data.shape[1])),
        binning=binning,
        zoom=zoom,
        grey=grey,
        blank=blank,
        limits=(lo, hi),
        texts=texts,
        tick_marks=marks,
        grid_lines=[list(zip(frame.x(lx).tolist(), frame.y(ly).tolist(), strict=True)) for lx, ly in lines],
        markers=markers,
        n_sources=n_sources,
        colorbar_box=cb_box,
        colorbar_ticks=cb_ticks,
        beam=beam,
        beam_box=beam_box,
        wcs_cards=None if wcs is None else _wcs_cards(wcs),
        bunit=image.bunit,
        beam_deg=image.beam_deg,
    )
