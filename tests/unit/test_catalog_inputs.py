"""Upload facts (pixels, degenerate axes, warnings) and the submit-time input checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.data import get_pkg_data_filename

from caesar_api.adapters.fits import inspect_fits
from caesar_api.domain.inputs import input_problem
from caesar_common.apps import get_app
from caesar_testkit.skysim import SimulationSpec, write_simulation


def _check(app_name: str, options: dict[str, object], path: Path) -> str | None:
    app = get_app(app_name)
    assert app is not None
    return input_problem(app, app.validate(options), "fits", inspect_fits(path))


def test_facts_of_a_4d_cube(tmp_path: Path) -> None:
    write_simulation(SimulationSpec(size=64, degenerate_axes=True, nan_corners=True), tmp_path / "c.fits")
    facts = inspect_fits(tmp_path / "c.fits")
    assert facts["degenerate_axes"] == [3, 4]
    assert facts["pixels"]["all_blank"] is False
    assert 0.7 < facts["pixels"]["finite_fraction"] < 0.85
    assert facts["warnings"] == []
    assert _check("sfind", {}, tmp_path / "c.fits") is None


def test_all_blank_and_constant_images_are_refused(tmp_path: Path) -> None:
    write_simulation(SimulationSpec(size=64), tmp_path / "nan.fits", kind="blank")
    assert inspect_fits(tmp_path / "nan.fits")["pixels"]["all_blank"] is True
    assert "all blank" in str(_check("bdsf", {}, tmp_path / "nan.fits"))
    write_simulation(SimulationSpec(size=64), tmp_path / "zero.fits", kind="blank")
    with fits.open(tmp_path / "zero.fits", mode="update") as hdul:
        hdul[0].data[:] = 0.0
    assert "constant" in str(_check("aegean", {}, tmp_path / "zero.fits"))


def test_missing_beam_needs_a_beam_parameter(tmp_path: Path) -> None:
    write_simulation(SimulationSpec(size=64, with_beam_keywords=False), tmp_path / "nb.fits")
    facts = inspect_fits(tmp_path / "nb.fits")
    assert any("beam" in w for w in facts["warnings"])
    for app in ("aegean", "bdsf", "sfind"):
        message = str(_check(app, {}, tmp_path / "nb.fits"))
        assert "BMAJ" in message
        assert "BMIN" in message
    assert _check("bdsf", {"bmaj": 9.0, "bmin": 6.0}, tmp_path / "nb.fits") is None
    assert _check("sfind", {"bmaj": 9.0, "bmin": 6.0}, tmp_path / "nb.fits") is None


def test_container_apps_and_non_fits_inputs() -> None:
    caesar, sfind = get_app("caesar"), get_app("sfind")
    assert caesar is not None
    assert sfind is not None
    assert input_problem(caesar, caesar.validate({}), "png", None) is None
    assert "FITS" in str(input_problem(sfind, sfind.validate({}), "png", None))


def test_real_parkes_map_facts() -> None:
    facts = inspect_fits(
        Path(get_pkg_data_filename("modeling/tests/data/1904-66_AZP.fits", package="astropy"))
    )
    assert facts["celestial"]["projection"] == "AZP"
    assert any("AZP" in w for w in facts["warnings"])
    assert 0.7 < facts["pixels"]["finite_fraction"] < 0.8
    assert np.isclose(facts["beam"]["bmaj_deg"], 0.24, atol=0.01)
