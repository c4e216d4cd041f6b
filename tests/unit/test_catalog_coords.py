"""Every harmonised catalogue gives ra in [0, 360) and dec in [-90, 90].

PyBDSF on a LOFAR field returned ``ra = -96.41``; an image that straddles RA 0 must not
come out as two fields 360 degrees apart. The rule is one pure function
(:func:`caesar_runner.catalogs.coords.normalise_radec`), tested here by properties
(same point on the sphere, in range, idempotent) and on catalogues read the way the
finalize step reads them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from astropy.table import Table
from hypothesis import given
from hypothesis import strategies as st

from caesar_runner.catalogs.coords import normalise_radec
from caesar_runner.catalogs.harmonise import read_native
from caesar_runner.catalogs.image import load_image
from caesar_runner.catalogs.sfind import OUTPUT_NAME, find_sources
from caesar_testkit.skysim import SimulationSpec, crossmatch, write_simulation

finite = st.floats(allow_nan=False, allow_infinity=False)
any_ra = finite.filter(lambda v: abs(v) <= 1e6)
any_dec = finite.filter(lambda v: abs(v) <= 1e4)
in_range_dec = st.floats(min_value=-90.0, max_value=90.0)


def unit_vectors(ra: npt.ArrayLike, dec: npt.ArrayLike) -> npt.NDArray[np.float64]:
    r, d = np.radians(np.asarray(ra, dtype=np.float64)), np.radians(np.asarray(dec, dtype=np.float64))
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)


def in_ranges(ra: npt.NDArray[np.float64], dec: npt.NDArray[np.float64]) -> bool:
    return bool(np.all((ra >= 0.0) & (ra < 360.0) & (dec >= -90.0) & (dec <= 90.0)))


@given(st.lists(st.tuples(any_ra, any_dec), min_size=1, max_size=20))
def test_any_position_lands_in_range_on_the_same_point(points: list[tuple[float, float]]) -> None:
    ra, dec = np.array(points).T
    out_ra, out_dec = normalise_radec(ra, dec)
    assert in_ranges(out_ra, out_dec)
    np.testing.assert_allclose(unit_vectors(out_ra, out_dec), unit_vectors(ra, dec), atol=1e-9)


@given(st.lists(st.tuples(any_ra, any_dec), min_size=1, max_size=20))
def test_normalising_twice_changes_nothing(points: list[tuple[float, float]]) -> None:
    once = normalise_radec(*np.array(points).T)
    twice = normalise_radec(*once)
    np.testing.assert_array_equal(twice[0], once[0])
    np.testing.assert_array_equal(twice[1], once[1])


@given(st.floats(min_value=0.0, max_value=360.0, exclude_max=True), in_range_dec)
def test_positions_in_range_are_kept_bit_for_bit(ra: float, dec: float) -> None:
    out_ra, out_dec = normalise_radec([ra], [dec])
    assert (out_ra[0], out_dec[0]) == (ra, dec)


@given(st.floats(min_value=-360.0, max_value=0.0, exclude_max=True), in_range_dec)
def test_negative_ra_is_shifted_by_a_turn(ra: float, dec: float) -> None:
    out_ra, out_dec = normalise_radec([ra], [dec])
    assert out_dec[0] == dec
    shifted = ra + 360.0
    expected = shifted if shifted < 360.0 else 0.0  # a tiny negative RA rounds to a full turn
    assert out_ra[0] == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= out_ra[0] < 360.0


@given(st.floats(min_value=360.0, max_value=720.0, exclude_max=True), in_range_dec)
def test_ra_of_a_turn_or_more_is_wrapped(ra: float, dec: float) -> None:
    out_ra, _ = normalise_radec([ra], [dec])
    assert out_ra[0] == pytest.approx(ra - 360.0, abs=1e-12)
    assert 0.0 <= out_ra[0] < 360.0


def test_worked_examples() -> None:
    ra, dec = normalise_radec(
        [-96.41, 370.0, 10.0, -1e-17, 359.9999, 0.0], [52.0, 95.0, -95.0, 0.0, -30.0, 90.0]
    )
    np.testing.assert_allclose(ra, [263.59, 190.0, 190.0, 0.0, 359.9999, 0.0])
    np.testing.assert_allclose(dec, [52.0, 85.0, -85.0, 0.0, -30.0, 90.0])
    assert ra[3] == 0.0  # not 360.0, which np.mod(-1e-17, 360) gives


def test_undefined_positions_stay_undefined() -> None:
    ra, dec = normalise_radec([np.nan, 10.0, np.inf, 1.0], [0.0, np.nan, 0.0, -np.inf])
    assert np.isnan(ra).all()
    assert np.isnan(dec).all()
    with pytest.raises(ValueError, match="shape"):
        normalise_radec([1.0, 2.0], [1.0])


def bdsf_native(ra: list[float], dec: list[float]) -> Table:
    """A PyBDSF source list with the columns the harmonisation reads."""
    n = len(ra)
    ones = np.ones(n)
    return Table(
        {
            "Source_id": np.arange(n),
            "Isl_id": np.arange(n),
            "RA": ra,
            "E_RA": ones * 1e-4,
            "DEC": dec,
            "E_DEC": ones * 1e-4,
            "Total_flux": ones * 0.02,
            "E_Total_flux": ones * 0.001,
            "Peak_flux": ones * 0.01,
            "E_Peak_flux": ones * 0.001,
            "Maj": ones * 0.002,
            "Min": ones * 0.0015,
            "PA": ones * 30.0,
            "DC_Maj": ones * 0.001,
            "DC_Min": ones * 0.0005,
            "DC_PA": ones * 30.0,
            "Isl_rms": ones * 1e-4,
            "S_Code": ["S"] * n,
        }
    )


def test_lofar_like_bdsf_catalogue_with_negative_ra(tmp_path: Path) -> None:
    # What PyBDSF wrote for a LOFAR field centred near RA 263.6 deg, Dec 52 deg.
    bdsf_native([-96.41, -96.5, -95.9], [52.0, 52.1, 51.9]).write(tmp_path / "catalog.srl.fits")
    table = read_native("bdsf", tmp_path, "sources")
    np.testing.assert_allclose(table["ra"], [263.59, 263.5, 264.1])
    np.testing.assert_array_equal(table["dec"], [52.0, 52.1, 51.9])
    assert in_ranges(np.asarray(table["ra"]), np.asarray(table["dec"]))


@pytest.fixture(scope="module")
def straddling(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Table]:
    """A 512^2 simulated map centred on RA 0 (half its sources at RA < 360, half at > 0)."""
    root = tmp_path_factory.mktemp("ra0")
    truth = write_simulation(SimulationSpec(size=512, seed=17, ra_deg=0.0, dec_deg=-30.0), root / "in.fits")
    return root / "in.fits", truth


@pytest.mark.parametrize("finder_wraps", [True, False], ids=["finder-0-360", "finder-signed"])
def test_image_straddling_ra_zero(straddling: tuple[Path, Table], tmp_path: Path, finder_wraps: bool) -> None:
    image, truth = straddling
    native = find_sources(load_image(image))
    if not finder_wraps:  # a finder that reports RA east of 0 as negative, like PyBDSF
        native["ra"] = np.where(native["ra"] > 180.0, native["ra"] - 360.0, native["ra"])
        assert (native["ra"] < 0).any()
    native.write(tmp_path / OUTPUT_NAME, format="fits")
    table = read_native("sfind", tmp_path)
    ra, dec = np.asarray(table["ra"]), np.asarray(table["dec"])
    assert in_ranges(ra, dec)
    assert (ra > 359.0).any()
    assert (ra < 1.0).any()
    match = crossmatch(truth, ra, dec, 9.0)
    assert match.completeness(10) >= 0.98
    assert np.median(match.separation_arcsec) < 1.0
