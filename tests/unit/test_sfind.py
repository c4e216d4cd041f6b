"""The bdsf and sfind apps (options, argv) and the sfind finder's behaviour on odd images."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.utils.data import get_pkg_data_filename

from caesar_common.apps import ParameterError, PlanContext, app_names, get_app
from caesar_runner.catalogs.image import find_frequency_hz, load_image
from caesar_runner.catalogs.sfind import OUTPUT_NAME, main
from caesar_testkit.skysim import SimulationSpec, write_simulation

PARKES = "modeling/tests/data/1904-66_AZP.fits"


def test_registry_lists_the_new_apps() -> None:
    names = app_names()
    assert "bdsf" in names
    assert "sfind" in names
    for name in ("bdsf", "sfind"):
        app = get_app(name)
        assert app is not None
        assert "local" in app.executors
        schema = app.json_schema()
        assert schema["additionalProperties"] is False
        assert "bmaj" in schema["properties"]


def test_sfind_plan_is_an_argv_with_the_beam(tmp_path: Path) -> None:
    app = get_app("sfind")
    assert app is not None
    params = app.validate({"seedthr": 6, "bmaj": 9, "bmin": 6, "bpa": 30})
    (step,) = app.plan(params, PlanContext(tmp_path / "in.fits", tmp_path, tmp_path / "bin"))
    assert step.argv[1:3] == ("-m", "caesar_runner.catalogs.sfind")
    assert step.argv[step.argv.index("--seed") + 1] == "6.0"
    beam = step.argv.index("--beam")
    assert [float(v) for v in step.argv[beam + 1 : beam + 4]] == [9 / 3600, 6 / 3600, 30.0]


def test_sfind_rules() -> None:
    app = get_app("sfind")
    assert app is not None
    with pytest.raises(ParameterError, match="mergethr"):
        app.validate({"seedthr": 3, "mergethr": 4})
    with pytest.raises(ParameterError, match="Unknown option"):
        app.validate({"nope": 1})


def test_bdsf_plan_defaults_keep_extended_sources(tmp_path: Path) -> None:
    app = get_app("bdsf")
    assert app is not None
    params = app.validate({"rms-box": 60, "adaptive-rms-box": True, "frequency": 1.4e9})
    (step,) = app.plan(params, PlanContext(tmp_path / "in.fits", tmp_path, tmp_path / "bin"))
    argv = step.argv
    assert argv[argv.index("--flag-maxsize-bm") + 1] == "200.0"
    assert argv[argv.index("--rms-box") + 1 : argv.index("--rms-box") + 3] == ("60", "20")
    assert "--adaptive-rms-box" in argv
    assert "--beam" not in argv
    assert argv[argv.index("--frequency") + 1] == "1400000000.0"
    assert app.resources(params, 64 * 2**20).memory_mb >= 1271


def test_frequency_from_restfrq(tmp_path: Path) -> None:
    write_simulation(SimulationSpec(size=64, n_sources=0, frequency_hz=8.875e8), tmp_path / "a.fits")
    assert find_frequency_hz(load_image(tmp_path / "a.fits").header) == 8.875e8


@pytest.mark.parametrize(
    ("spec", "minimum"),
    [
        (SimulationSpec(size=256, seed=5), 15),
        (SimulationSpec(size=256, seed=5, degenerate_axes=True, nan_corners=True), 10),
    ],
    ids=["2d", "4d-nan-corners"],
)
def test_sfind_finds_sources(tmp_path: Path, spec: SimulationSpec, minimum: int) -> None:
    write_simulation(spec, tmp_path / "in.fits")
    assert main([str(tmp_path / "in.fits"), "--outdir", str(tmp_path)]) == 0
    assert len(Table.read(tmp_path / OUTPUT_NAME)) >= minimum


def test_sfind_pure_noise_writes_nothing(tmp_path: Path) -> None:
    write_simulation(SimulationSpec(size=256, seed=2), tmp_path / "in.fits", kind="noise")
    assert main([str(tmp_path / "in.fits"), "--outdir", str(tmp_path)]) == 0
    assert not (tmp_path / OUTPUT_NAME).exists()


def test_sfind_refuses_blank_and_beamless_images(tmp_path: Path) -> None:
    write_simulation(SimulationSpec(size=64), tmp_path / "nan.fits", kind="blank")
    assert main([str(tmp_path / "nan.fits"), "--outdir", str(tmp_path)]) == 2
    write_simulation(SimulationSpec(size=128, with_beam_keywords=False), tmp_path / "nb.fits")
    assert main([str(tmp_path / "nb.fits"), "--outdir", str(tmp_path)]) == 2
    beam = ["--beam", str(9 / 3600), str(6 / 3600), "0"]
    assert main([str(tmp_path / "nb.fits"), "--outdir", str(tmp_path), *beam]) == 0
    assert (tmp_path / OUTPUT_NAME).exists()


def test_sfind_on_the_real_parkes_map(tmp_path: Path) -> None:
    path = get_pkg_data_filename(PARKES, package="astropy")
    assert main([path, "--outdir", str(tmp_path)]) == 0
    assert len(Table.read(tmp_path / OUTPUT_NAME)) >= 3


def test_beam_from_aips_history(tmp_path: Path) -> None:
    path = tmp_path / "aips.fits"
    write_simulation(SimulationSpec(size=64, with_beam_keywords=False), path)
    with fits.open(path, mode="update") as hdul:
        hdul[0].header.add_history("AIPS   CLEAN BMAJ=  2.5000E-03 BMIN=  1.6667E-03 BPA=  30.00")
    assert load_image(path).beam_deg == (2.5e-3, 1.6667e-3, 30.0)
