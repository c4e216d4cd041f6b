"""Harmonised catalogue writers and the preview: what clients' tools read back."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io.votable import parse_single_table
from astropy.table import Table

from caesar_runner.catalogs.harmonise import CORE_COLUMNS, empty_catalog, read_native
from caesar_runner.catalogs.image import load_image
from caesar_runner.catalogs.preview import decimate, render_preview
from caesar_runner.catalogs.sfind import OUTPUT_NAME, find_sources
from caesar_runner.catalogs.writers import FORMATS, catalog_to_json, write_catalog
from caesar_testkit.skysim import SimulationSpec, write_simulation

regions = pytest.importorskip("regions")


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


def test_writers_round_trip_with_declared_units(found: tuple[Path, Table], tmp_path: Path) -> None:
    _, table = found
    written = write_catalog(table, tmp_path, "sources")
    assert set(written) == set(FORMATS)
    vot = Table.read(tmp_path / written["votable"], format="votable")
    fit = Table.read(tmp_path / written["fits"], format="fits")
    for back in (vot, fit):
        assert len(back) == len(table)
        for spec in CORE_COLUMNS:
            expected = None if spec.unit is None else u.Unit(spec.unit)
            assert back[spec.name].unit == expected, spec.name
        assert np.allclose(back["int_flux"], table["int_flux"])
    fields = {f.name: f for f in parse_single_table(str(tmp_path / written["votable"])).fields}
    assert fields["ra"].ucd == "pos.eq.ra;meta.main"
    assert fields["peak_flux"].ucd == "phot.flux.density;stat.max"
    csv = Table.read(tmp_path / written["csv"], format="ascii.csv")
    assert np.allclose(csv["dec"], table["dec"])
    doc = json.loads((tmp_path / written["json"]).read_text())
    assert doc["n_sources"] == len(table)
    assert doc["finder"] == "sfind"
    assert {c["name"]: c["unit"] for c in doc["columns"]}["int_flux"] == "Jy"
    shapes = regions.Regions.read(str(tmp_path / written["ds9"]), format="ds9")
    assert len(shapes) == len(table)
    assert not list(tmp_path.glob(".*.tmp"))


def test_empty_catalog_writes_every_format(tmp_path: Path) -> None:
    table = read_native("aegean", tmp_path)  # no native file: nothing found
    assert len(table) == 0
    written = write_catalog(table, tmp_path, "sources")
    assert len(Table.read(tmp_path / written["votable"], format="votable")) == 0
    assert len(Table.read(tmp_path / written["fits"], format="fits")) == 0
    assert json.loads((tmp_path / written["json"]).read_text())["sources"] == []
    assert len(regions.Regions.read(str(tmp_path / written["ds9"]), format="ds9")) == 0


def test_json_has_null_for_nan() -> None:
    table = empty_catalog("sfind")
    table.add_row({name: 0 for name in table.colnames})
    table["err_ra"][0] = math.nan
    doc = catalog_to_json(table)
    assert doc["sources"][0]["err_ra"] is None
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


def test_preview_is_a_png(found: tuple[Path, Table], tmp_path: Path) -> None:
    job, table = found
    out = tmp_path / "preview.png"
    render_preview(load_image(job / "in.fits"), table, out, max_pixels=128)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
