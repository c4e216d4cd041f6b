"""The harmonised table, its canonical FITS file and the preview.

The formats the api derives from the canonical file are tested in
``test_catalog_formats.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

from caesar_api.adapters.catalog_formats import DERIVERS, catalog_to_json, read_canonical
from caesar_runner.catalogs.harmonise import CORE_COLUMNS, empty_catalog, read_native
from caesar_runner.catalogs.image import load_image
from caesar_runner.catalogs.preview import decimate, grid_step_deg, render_preview, stretch
from caesar_runner.catalogs.sfind import OUTPUT_NAME, find_sources
from caesar_runner.catalogs.writers import CANONICAL_FORMAT, DERIVED_FORMATS, FORMATS, write_canonical
from caesar_testkit.skysim import SimulationSpec, write_simulation


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Table]:
    """A 256^2 simulated map, sfind's native output and its harmonised table."""
    job = tmp_path_factory.mktemp("job")
    write_simulation(SimulationSpec(size=256, seed=11), job / "in.fits")
    native = find_sources(load_image(job / "in.fits"))
    native.write(job / OUTPUT_NAME, format="fits")
    return job, read_native("sfind", job)


def test_harmonised_table_has_core_columns_with_units(found: tuple[Path, Table]) -> None:
    _, table = found
    assert len(table) > 10
    assert table.colnames[: len(CORE_COLUMNS)] == [c.name for c in CORE_COLUMNS]
    assert table["ra"].unit == u.deg
    assert table["int_flux"].unit == u.Jy
    assert list(table["source_id"]) == list(range(1, len(table) + 1))
    assert np.allclose(table["snr"], table["peak_flux"] / table["local_rms"])
    assert "sfind_npix" in table.colnames


def test_canonical_fits_keeps_units_descriptions_and_ucds(found: tuple[Path, Table], tmp_path: Path) -> None:
    _, table = found
    name = write_canonical(table, tmp_path, "sources")
    assert name == "sources.fits"
    assert [p.name for p in tmp_path.iterdir()] == ["sources.fits"]  # no temporary left
    back = read_canonical(tmp_path / name)
    assert back.colnames == table.colnames
    assert back.meta == {"finder": "sfind", "catalog": "sources"}
    for spec in CORE_COLUMNS:
        expected = None if spec.unit is None else u.Unit(spec.unit)
        assert back[spec.name].unit == expected, spec.name
        assert back[spec.name].description == spec.description
        assert back[spec.name].meta["ucd"] == spec.ucd
    for column in table.colnames:  # binary: every value bit for bit, NaN included
        np.testing.assert_array_equal(back[column], table[column])


def test_every_served_format_is_canonical_or_derived() -> None:
    assert CANONICAL_FORMAT == "fits"
    assert set(DERIVED_FORMATS) | {CANONICAL_FORMAT} == set(FORMATS)
    assert set(DERIVERS) == set(DERIVED_FORMATS)


def test_empty_catalog_round_trips(tmp_path: Path) -> None:
    table = read_native("aegean", tmp_path)  # no native file: nothing found
    assert len(table) == 0
    back = read_canonical(tmp_path / write_canonical(table, tmp_path, "sources"))
    assert len(back) == 0
    assert back.colnames == [c.name for c in CORE_COLUMNS]


def test_json_has_null_for_nan() -> None:
    table = empty_catalog("sfind")
    table.add_row({name: 0 for name in table.colnames})
    table["err_ra"][0] = math.nan
    doc = catalog_to_json(table)
    assert doc["sources"][0]["err_ra"] is None
    assert doc["sources"][0]["source_id"] == 0
    json.dumps(doc, allow_nan=False)


def test_decimate_keeps_blank_blocks_blank() -> None:
    data = np.ones((100, 100), dtype=np.float32)
    data[:10, :10] = np.nan
    small, factor = decimate(data, 25)
    assert factor == 4
    assert small.shape == (25, 25)
    assert np.isnan(small[0, 0])
    assert small[5, 5] == 1.0
    same, one = decimate(data, 200)
    assert one == 1
    assert same is data


def test_decimate_without_blanks_is_the_block_mean() -> None:
    data = np.arange(64 * 48, dtype=np.float32).reshape(64, 48)
    small, factor = decimate(data, 16)
    assert factor == 4
    np.testing.assert_allclose(small, data.reshape(16, 4, 12, 4).mean(axis=(1, 3)))
    with_blank = data.copy()
    with_blank[0, 0] = np.nan
    blank_small, _ = decimate(with_blank, 16)
    assert blank_small[0, 0] == pytest.approx(np.nanmean(with_blank[:4, :4]))
    np.testing.assert_allclose(blank_small[1:], small[1:])


def test_preview_is_a_png_of_the_display_size(found: tuple[Path, Table], tmp_path: Path) -> None:
    from PIL import Image

    job, table = found
    out = tmp_path / "preview.png"
    render_preview(load_image(job / "in.fits"), table, out, max_pixels=128)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as png:
        width, height = png.size
    assert 128 < width < 128 + 250  # the image plus the axes, labels and colour bar
    assert 128 < height < 128 + 100
    assert [p.name for p in tmp_path.iterdir()] == ["preview.png"]


def test_stretch_is_inverted_grey_with_white_blanks() -> None:
    data = np.linspace(0.0, 1.0, 1000, dtype=np.float32).reshape(10, 100)
    data[0, 0] = np.nan
    grey = stretch(data)
    assert grey.dtype == np.uint8
    assert grey[0, 0] == 255
    assert grey[-1, -1] == 0  # brightest is black
    assert grey[5, 10] > grey[5, 90]


@pytest.mark.parametrize(("span", "step"), [(0.5, 0.1), (0.05, 0.01), (3.0, 0.5), (7.0, 2.0), (200.0, 45.0)])
def test_grid_steps_are_round(span: float, step: float) -> None:
    assert grid_step_deg(span) == pytest.approx(step)
