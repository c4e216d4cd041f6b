"""The preview PNG and ``preview.json``: axes, stretch, colour bar, beam, markers, geometry.

The figure is checked twice: as the laid-out scene (what is meant to be drawn, where) and
as the PNG's pixels (that it was drawn there). Images are written to FITS and read back
the way the finalize step reads them.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from PIL import Image

from caesar_runner.catalogs.display import display_limits, zscale_limits
from caesar_runner.catalogs.harmonise import empty_catalog
from caesar_runner.catalogs.image import load_image
from caesar_runner.catalogs.preview import (
    BEAM,
    BLANK,
    RED,
    read_preview_image,
    render_preview,
    scene_for,
    text_box,
    write_preview,
)
from caesar_runner.catalogs.preview_layout import PreviewScene
from caesar_runner.catalogs.skyaxes import format_dec, format_ra, sky_ticks
from caesar_runner.finalize import PREVIEW, PREVIEW_GEOMETRY, finalize
from caesar_testkit.skysim import SimulationSpec, write_simulation

PIXEL_ARCSEC = 2.0
SIZE = 200
BEAM_ARCSEC = (16.0, 10.0, 30.0)
# (ra, dec, maj", min", pa): well inside the image, away from the beam's corner.
SOURCES = [
    (150.02, 2.01, 24.0, 12.0, 30.0),
    (149.97, 1.98, 18.0, 18.0, 0.0),
    (150.0, 2.0, 40.0, 10.0, -60.0),
]

Box = tuple[float, float, float, float]


def _header(with_wcs: bool = True, with_beam: bool = True, bunit: str | None = "JY/BEAM") -> fits.Header:
    header = fits.Header()
    if with_wcs:
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
        wcs.wcs.crval = [150.0, 2.0]
        wcs.wcs.crpix = [SIZE / 2 + 0.5, SIZE / 2 + 0.5]
        wcs.wcs.cdelt = [-PIXEL_ARCSEC / 3600.0, PIXEL_ARCSEC / 3600.0]
        header.update(wcs.to_header())
    if with_beam:
        header["BMAJ"], header["BMIN"], header["BPA"] = (
            BEAM_ARCSEC[0] / 3600.0,
            BEAM_ARCSEC[1] / 3600.0,
            BEAM_ARCSEC[2],
        )
    if bunit:
        header["BUNIT"] = bunit
    return header


def _write(path: Path, data: np.ndarray[Any, Any], header: fits.Header) -> Path:
    fits.PrimaryHDU(data.astype(">f4"), header).writeto(path)
    return path


def _noise(seed: int = 1) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).normal(0.0, 1e-4, (SIZE, SIZE)).astype(np.float32)


def _catalog(rows: list[tuple[float, float, float, float, float]] = SOURCES) -> Table:
    table = empty_catalog("sfind")
    for ra, dec, maj, mn, pa in rows:
        table.add_row(
            {**{name: 0 for name in table.colnames}, "ra": ra, "dec": dec, "maj": maj, "min": mn, "pa": pa}
        )
    return table


def _rgb(png: Path) -> np.ndarray[Any, Any]:
    with Image.open(png) as image:
        return np.asarray(image.convert("RGB"))


def _palette_rgb(png: Path, index: int) -> tuple[int, int, int]:
    with Image.open(png) as image:
        palette = image.getpalette()
        assert palette is not None
    return (palette[3 * index], palette[3 * index + 1], palette[3 * index + 2])


def _seconds(label: str) -> float:
    """Seconds of time of an RA label like ``9h59m50s``."""
    match = re.fullmatch(r"(\d+)h(\d+)m([\d.]+)s", label)
    assert match is not None, label
    return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])


def _near(rgb: np.ndarray[Any, Any], x: float, y: float, colour: tuple[int, int, int]) -> bool:
    """Whether ``colour`` is drawn within one pixel of PNG ``(x, y)``."""
    patch = rgb[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2].reshape(-1, 3)
    return any(tuple(int(v) for v in p) == colour for p in patch)


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _with_sources(data: np.ndarray[Any, Any], header: fits.Header) -> np.ndarray[Any, Any]:
    """``data`` plus a round Gaussian of 50 sigma at each of :data:`SOURCES` (its major FWHM)."""
    wcs = WCS(header)
    yy, xx = np.mgrid[: data.shape[0], : data.shape[1]]
    out = data.copy()
    for ra, dec, maj, _, _ in SOURCES:
        x, y = wcs.world_to_pixel_values(ra, dec)
        sigma = maj / PIXEL_ARCSEC / 2.3548
        out += 5e-3 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return out.astype(np.float32)


@pytest.fixture
def sky_png(tmp_path: Path) -> tuple[PreviewScene, Path, Path]:
    """A 200^2 image with WCS, beam and BUNIT, three sized sources: PNG + JSON."""
    image = load_image(_write(tmp_path / "in.fits", _with_sources(_noise(), _header()), _header()))
    scene = write_preview(tmp_path / "preview.png", tmp_path / "preview.json", _catalog(), image)
    return scene, tmp_path / "preview.png", tmp_path / "preview.json"


def test_axes_are_labelled_ra_dec_j2000_on_the_bottom_and_left(
    sky_png: tuple[PreviewScene, Path, Path],
) -> None:
    scene, _, _ = sky_png
    x0, y0, x1, y1 = scene.axes_box
    labels = {t.text: t for t in scene.texts if t.role == "label"}
    ra, dec = labels["RA (J2000)"], labels["Dec (J2000)"]
    assert text_box(ra)[1] > y1
    assert x0 < ra.x < x1
    assert not ra.vertical
    assert text_box(dec)[2] < x0
    assert y0 < dec.y < y1
    assert dec.vertical
    assert not any("pos.eq" in t.text for t in scene.texts)
    ticks = [t for t in scene.texts if t.role == "tick"]
    ra_ticks = [t for t in ticks if re.fullmatch(r"\d{1,2}h\d\dm(\d\d(\.\d+)?s)?", t.text)]
    dec_ticks = [
        t for t in ticks if re.fullmatch(r"[+\u2212]?\d{1,2}\u00b0\d\d\u2032(\d\d(\.\d+)?\u2033)?", t.text)
    ]
    assert len(ra_ticks) >= 2  # sexagesimal, below
    assert all(text_box(t)[1] > y1 for t in ra_ticks)
    assert len(dec_ticks) >= 2  # sexagesimal, left
    assert all(text_box(t)[2] < x0 for t in dec_ticks)
    ra_left_to_right = [_seconds(t.text) for t in sorted(ra_ticks, key=lambda t: t.x)]
    assert ra_left_to_right == sorted(ra_left_to_right, reverse=True)  # east is left, as on the sky


def test_no_text_overlaps_another_the_image_or_the_colour_bar(
    sky_png: tuple[PreviewScene, Path, Path],
) -> None:
    scene, png, _ = sky_png
    boxes = [(t.text, text_box(t)) for t in scene.texts]
    assert scene.colorbar_box is not None
    for name, box in boxes:
        assert box[0] >= 0, name
        assert box[1] >= 0, name
        assert box[2] <= scene.width, name
        assert box[3] <= scene.height, name
        assert not _overlap(box, scene.axes_box), name
        assert not _overlap(box, scene.colorbar_box), name
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not _overlap(box_a, box_b), (a, b)
    title = next(t for t in scene.texts if t.role == "title")
    assert title.text == "sfind: 3 sources"
    assert text_box(title)[3] < scene.axes_box[1]
    with Image.open(png) as image:
        assert image.size == (scene.width, scene.height)


@pytest.mark.parametrize("shape", [(64, 64), (120, 700), (700, 90), (1000, 1000)])
def test_no_text_overlaps_whatever_the_image_shape(tmp_path: Path, shape: tuple[int, int]) -> None:
    header = _header()
    header["CRPIX1"], header["CRPIX2"] = shape[1] / 2 + 0.5, shape[0] / 2 + 0.5
    data = np.random.default_rng(3).normal(0.0, 1e-4, shape).astype(np.float32)
    scene = scene_for(load_image(_write(tmp_path / "in.fits", data, header)), _catalog())
    boxes = [(t.text, text_box(t)) for t in scene.texts]
    assert {"RA (J2000)", "Dec (J2000)", "JY/BEAM", "sfind: 3 sources"} <= {name for name, _ in boxes}
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not _overlap(box_a, box_b), (a, b)
    for name, box in boxes:
        assert not _overlap(box, scene.axes_box), name
        assert box[2] <= scene.width, name


def test_colour_bar_is_labelled_with_bunit_and_runs_white_to_black(
    sky_png: tuple[PreviewScene, Path, Path],
) -> None:
    scene, png, _ = sky_png
    assert scene.colorbar_box is not None
    cx0, cy0, cx1, cy1 = scene.colorbar_box
    label = next(t for t in scene.texts if t.text == "JY/BEAM")
    assert label.vertical
    assert text_box(label)[0] > cx1
    assert len(scene.colorbar_ticks) >= 3
    assert all(cy0 - 1 <= y <= cy1 + 1 for y, _ in scene.colorbar_ticks)
    rgb = _rgb(png)
    column = rgb[round(cy0) + 1 : round(cy1) - 1, round((cx0 + cx1) / 2), 0].astype(int)
    assert column[0] < 10  # bright (top) is black
    assert column[-1] > 245  # faint is white
    assert np.all(np.diff(column) >= 0)


def test_stretch_uses_zscale_floor_and_leaves_noise_light(sky_png: tuple[PreviewScene, Path, Path]) -> None:
    scene, png, _ = sky_png
    lo, hi = scene.limits
    zlo, zhi = zscale_limits(_with_sources(_noise(), _header()))
    assert lo == pytest.approx(zlo, rel=1e-6)
    assert hi >= zhi
    x0, y0, x1, y1 = (round(v) for v in scene.axes_box)
    grey = _rgb(png)[y0 + 40 : y1 - 40, x0 + 40 : x1 - 40, 1]
    assert 150 < float(np.median(grey)) < 250  # noise is a light texture, not a black field


def test_zscale_matches_astropy(tmp_path: Path) -> None:
    from astropy.visualization import ZScaleInterval  # imports matplotlib: tests only

    write_simulation(SimulationSpec(size=256, seed=5, nan_corners=True), tmp_path / "sim.fits")
    data = load_image(tmp_path / "sim.fits").data
    assert zscale_limits(data) == pytest.approx(
        ZScaleInterval().get_limits(data[np.isfinite(data)]), rel=1e-9
    )


def test_beam_is_drawn_to_scale_in_the_bottom_left_corner(sky_png: tuple[PreviewScene, Path, Path]) -> None:
    scene, png, _ = sky_png
    assert scene.beam is not None
    assert scene.beam_box is not None
    x0, y0, x1, y1 = scene.axes_box
    assert float(scene.beam.semi_major_px[0]) == pytest.approx(
        BEAM_ARCSEC[0] / 2 / PIXEL_ARCSEC * scene.zoom, rel=1e-3
    )
    assert float(scene.beam.semi_minor_px[0]) == pytest.approx(
        BEAM_ARCSEC[1] / 2 / PIXEL_ARCSEC * scene.zoom, rel=1e-3
    )
    bx0, by0, bx1, by1 = scene.beam_box
    assert x0 <= bx0 < bx1 < x0 + (x1 - x0) / 4
    assert y1 - (y1 - y0) / 4 < by0 < by1 <= y1
    # PA 30 deg east of north with east to the left: the major axis leans to the upper left.
    dx, dy = scene.beam.outline_x[0, 0] - scene.beam.x[0], scene.beam.outline_y[0, 0] - scene.beam.y[0]
    assert math.degrees(math.atan2(-dx, -dy)) == pytest.approx(BEAM_ARCSEC[2], abs=0.5)
    centre = _rgb(png)[round(float(scene.beam.y[0])), round(float(scene.beam.x[0]))]
    assert tuple(centre) == _palette_rgb(png, BEAM)


def test_one_marker_per_source_sized_by_its_fit(sky_png: tuple[PreviewScene, Path, Path]) -> None:
    scene, png, _ = sky_png
    assert scene.markers is not None
    assert len(scene.markers.x) == len(SOURCES)
    px_per_arcsec = scene.zoom / PIXEL_ARCSEC / scene.binning
    for i, (_, _, maj, mn, _) in enumerate(SOURCES):
        assert float(scene.markers.semi_major_px[i]) == pytest.approx(maj / 2 * px_per_arcsec, rel=1e-3)
        assert float(scene.markers.semi_minor_px[i]) == pytest.approx(mn / 2 * px_per_arcsec, rel=1e-3)
        radii = np.hypot(
            scene.markers.outline_x[i] - scene.markers.x[i], scene.markers.outline_y[i] - scene.markers.y[i]
        )
        assert radii.max() == pytest.approx(maj / 2 * px_per_arcsec, rel=1e-3)
        assert radii.min() == pytest.approx(mn / 2 * px_per_arcsec, rel=0.05)  # 24 vertices
    rgb, red = _rgb(png), _palette_rgb(png, RED)
    for row_x, row_y in zip(scene.markers.outline_x, scene.markers.outline_y, strict=True):
        assert all(_near(rgb, x, y, red) for x, y in zip(row_x, row_y, strict=True))  # drawn there


def test_preview_json_maps_sky_positions_onto_the_markers(sky_png: tuple[PreviewScene, Path, Path]) -> None:
    scene, png, geometry_path = sky_png
    geometry = json.loads(geometry_path.read_text())
    with Image.open(png) as image:
        assert (geometry["width"], geometry["height"]) == image.size
    ny, nx = geometry["image_shape"]
    x0, y0, x1, y1 = geometry["axes_box"]
    assert (x1 - x0) / nx == (y1 - y0) / ny == scene.zoom
    assert geometry["bunit"] == "JY/BEAM"
    assert geometry["beam"] == pytest.approx(
        {"bmaj_arcsec": BEAM_ARCSEC[0], "bmin_arcsec": BEAM_ARCSEC[1], "bpa_deg": BEAM_ARCSEC[2]}
    )
    wcs = WCS(fits.Header(geometry["wcs"]))  # what a client has: the cards only
    assert scene.markers is not None
    for i, (ra, dec, *_) in enumerate(SOURCES):
        x, y = wcs.world_to_pixel_values(ra, dec)
        png_x = x0 + (float(x) + 0.5) * (x1 - x0) / nx
        png_y = y1 - (float(y) + 0.5) * (y1 - y0) / ny
        assert (png_x, png_y) == pytest.approx(
            (float(scene.markers.x[i]), float(scene.markers.y[i])), abs=1e-6
        )
        # ...and the PNG has the marker there: red on its outline along the major axis.
        tip_x, tip_y = scene.markers.outline_x[i, 0], scene.markers.outline_y[i, 0]
        assert _near(_rgb(png), tip_x, tip_y, _palette_rgb(png, RED))


def test_a_binned_image_maps_through_its_binned_wcs(tmp_path: Path) -> None:
    write_simulation(SimulationSpec(size=1000, seed=2), tmp_path / "big.fits")
    image = load_image(tmp_path / "big.fits")
    ra, dec = image.wcs.pixel_to_world_values(611.0, 287.0)  # full-resolution pixel
    scene = write_preview(
        tmp_path / "p.png", tmp_path / "p.json", _catalog([(float(ra), float(dec), 20.0, 10.0, 0.0)]), image
    )
    geometry = json.loads((tmp_path / "p.json").read_text())
    assert geometry["binning"] == 2
    assert geometry["source_shape"] == [1000, 1000]
    assert geometry["image_shape"] == [500, 500]
    assert scene.zoom == 1
    x, y = WCS(fits.Header(geometry["wcs"])).world_to_pixel_values(ra, dec)
    assert (float(x), float(y)) == pytest.approx(((611.0 + 0.5) / 2 - 0.5, (287.0 + 0.5) / 2 - 0.5), abs=1e-6)
    x0, _, _, y1 = geometry["axes_box"]
    assert scene.markers is not None
    assert float(scene.markers.x[0]) == pytest.approx(x0 + float(x) + 0.5)
    assert float(scene.markers.y[0]) == pytest.approx(y1 - float(y) - 0.5)


def test_small_images_are_magnified_by_a_whole_factor(tmp_path: Path) -> None:
    data = _noise()[:64, :64]
    header = _header()
    header["CRPIX1"] = header["CRPIX2"] = 32.5
    scene = render_preview(
        load_image(_write(tmp_path / "s.fits", data, header)), _catalog([]), tmp_path / "s.png"
    )
    x0, y0, x1, y1 = scene.axes_box
    assert scene.zoom == 8
    assert (x1 - x0, y1 - y0) == (512, 512)
    assert scene.markers is None
    assert scene.n_sources == 0


def test_image_without_wcs_beam_or_bunit_still_renders(tmp_path: Path) -> None:
    path = _write(tmp_path / "bare.fits", _noise(), _header(with_wcs=False, with_beam=False, bunit=None))
    scene = write_preview(tmp_path / "p.png", tmp_path / "p.json", _catalog(), input_path=path)
    labels = {t.text for t in scene.texts if t.role == "label"}
    assert {"x (pixel)", "y (pixel)", "pixel value (no BUNIT)"} <= labels
    assert any(t.text == "100" for t in scene.texts if t.role == "tick")
    assert scene.markers is None
    assert scene.beam is None
    title = next(t.text for t in scene.texts if t.role == "title")
    assert title == "sfind: 3 sources (not drawn: the image has no celestial WCS)"
    geometry = json.loads((tmp_path / "p.json").read_text())
    assert (geometry["wcs"], geometry["beam"], geometry["bunit"]) == (None, None, None)
    with Image.open(tmp_path / "p.png") as image:
        assert image.size == (scene.width, scene.height)


def test_image_without_beam_has_no_beam_patch(tmp_path: Path) -> None:
    image = load_image(_write(tmp_path / "nb.fits", _noise(), _header(with_beam=False)))
    scene = write_preview(tmp_path / "p.png", tmp_path / "p.json", _catalog(), image)
    assert scene.beam is None
    assert scene.markers is not None
    assert json.loads((tmp_path / "p.json").read_text())["beam"] is None


def test_blank_pixels_have_their_own_colour_and_an_all_blank_image_renders(tmp_path: Path) -> None:
    data = _noise()
    data[:50, :] = np.nan
    image = load_image(_write(tmp_path / "half.fits", data, _header()))
    scene = render_preview(image, _catalog(), tmp_path / "half.png")
    x0, _, x1, y1 = (round(v) for v in scene.axes_box)
    blank_row = _rgb(tmp_path / "half.png")[y1 - 10, x0 + 60 : x1 - 10]  # bottom rows = first FITS rows
    colours = [tuple(int(v) for v in p) for p in blank_row]
    assert colours.count(_palette_rgb(tmp_path / "half.png", BLANK)) > 0.9 * len(
        colours
    )  # grid lines cross it

    empty = load_image(_write(tmp_path / "blank.fits", np.full((SIZE, SIZE), np.nan), _header()))
    blank_scene = write_preview(tmp_path / "b.png", tmp_path / "b.json", _catalog(), empty)
    assert bool(blank_scene.blank.all())
    assert all(math.isfinite(v) for v in blank_scene.limits)
    json.loads((tmp_path / "b.json").read_text())  # no NaN in the geometry


def test_display_limits_of_a_constant_image_are_a_range() -> None:
    lo, hi = display_limits(np.full((10, 10), 3.0, dtype=np.float32))
    assert hi > lo


def test_write_preview_leaves_only_its_two_files(tmp_path: Path) -> None:
    image = load_image(_write(tmp_path.joinpath("in.fits"), _noise(), _header()))
    out = tmp_path / "out"
    out.mkdir()
    write_preview(out / "preview.png", out / "preview.json", _catalog(), image)
    assert sorted(p.name for p in out.iterdir()) == ["preview.json", "preview.png"]


def test_finalize_lists_the_geometry_next_to_the_preview(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    path = _write(tmp_path / "in.fits", _noise(), _header(with_wcs=False))
    record = finalize("aegean", job, path)  # no native table: no sources; the input has no WCS
    assert record["preview"] == PREVIEW
    assert record["preview_geometry"] == PREVIEW_GEOMETRY
    assert json.loads((job / PREVIEW_GEOMETRY).read_text())["wcs"] is None


def test_read_preview_image_keeps_the_wcs_when_there_is_one(tmp_path: Path) -> None:
    view = read_preview_image(_write(tmp_path / "in.fits", _noise(), _header()))
    assert view.wcs is not None
    assert view.bunit == "JY/BEAM"
    assert view.beam_deg == pytest.approx((BEAM_ARCSEC[0] / 3600.0, BEAM_ARCSEC[1] / 3600.0, BEAM_ARCSEC[2]))


@pytest.mark.parametrize(
    ("deg", "step_s", "text"),
    [
        (266.75, 30.0, "17h47m00s"),
        (266.75, 60.0, "17h47m"),
        (266.7521, 0.1, "17h47m00.5s"),
        (359.99999, 1.0, "0h00m00s"),  # rounds up across 24h
        (15.0, 3600.0, "1h"),
    ],
)
def test_ra_labels(deg: float, step_s: float, text: str) -> None:
    assert format_ra(deg, step_s / 240.0) == text


@pytest.mark.parametrize(
    ("deg", "step_as", "text", "ascii_text"),
    [
        (-28.5, 300.0, "\u221228\u00b030\u2032", "-28d30'"),
        (-28.99999, 0.1, "\u221229\u00b000\u203200.0\u2033", "-29d00'00.0\""),
        (-0.00001, 60.0, "0\u00b000\u2032", "0d00'"),
        (45.0, 18000.0, "+45\u00b0", "+45d"),
    ],
)
def test_dec_labels(deg: float, step_as: float, text: str, ascii_text: str) -> None:
    assert format_dec(deg, step_as / 3600.0) == text
    assert format_dec(deg, step_as / 3600.0, unicode=False) == ascii_text


def test_ra_ticks_cross_0h_without_a_seam() -> None:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [0.0, 10.0]
    wcs.wcs.crpix = [100.5, 100.5]
    wcs.wcs.cdelt = [-10.0 / 3600.0, 10.0 / 3600.0]
    ticks, ra_step, _ = sky_ticks(wcs, (200, 200), 6, 6)
    bottom = sorted((t for t in ticks if t.edge == "bottom"), key=lambda t: t.position)
    assert {"0h00m00s", "23h59m30s"} <= {t.label for t in bottom}
    gaps = np.diff([t.position for t in bottom])
    assert np.allclose(gaps, gaps[0], rtol=0.02)  # evenly spaced through 0h
    assert ra_step == pytest.approx(30.0 / 240.0)


def test_scene_for_reads_the_harmonised_columns(tmp_path: Path) -> None:
    image = load_image(_write(tmp_path / "in.fits", _noise(), _header()))
    table = _catalog()
    table["maj"][1] = table["min"][1] = np.nan  # no fitted size: still a (minimum) ring
    scene = scene_for(image, table)
    assert scene.markers is not None
    assert len(scene.markers.x) == len(SOURCES)
    assert float(scene.markers.semi_major_px[1]) == pytest.approx(1.5)
