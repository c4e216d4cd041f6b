"""Accuracy of the three runnable finders, and the service's catalogue vs a direct run.

Each finder runs exactly as a job does: the app's plan steps, then the runner's finalize
step if the app has one (sfind and PyBDSF finalize in their own step), as processes in a
job directory. Statistics are pooled over three 512^2 simulated
maps (about 300 true sources) so the thresholds are not at the mercy of one seed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table, vstack
from astropy.utils.data import get_pkg_data_filename

from caesar_common.apps import PlanContext, get_app
from caesar_runner.catalogs.harmonise import read_native
from caesar_runner.catalogs.image import load_image
from caesar_runner.catalogs.sfind import find_sources
from caesar_runner.finalize import finalize_step
from caesar_testkit.skysim import SimulationSpec, crossmatch, write_simulation

FINDERS: dict[str, dict[str, object]] = {"aegean": {}, "bdsf": {}, "sfind": {}}
SEEDS = (21, 22, 23)
BEAM_ARCSEC = 9.0


def run_job(app_name: str, params: dict[str, object], image: Path, job_dir: Path) -> Table:
    """Run ``app_name``'s plan and the finalize step like the runner does; harmonised sources."""
    app = get_app(app_name)
    assert app is not None
    job_dir.mkdir(parents=True)
    ctx = PlanContext(image, job_dir, Path(sys.executable).parent)
    final = finalize_step(app_name, ctx)  # None: the finder step finalizes itself
    for step in [*app.plan(app.validate(params), ctx), *([final] if final else [])]:
        done = subprocess.run(
            step.argv,
            cwd=job_dir,
            env={**os.environ, **step.env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{step.name}: {done.stderr[-2000:]}"
    return Table.read(job_dir / "sources.fits")


@pytest.fixture(scope="module")
def maps(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Table]]:
    root = tmp_path_factory.mktemp("maps")
    return [
        (root / f"m{s}.fits", write_simulation(SimulationSpec(size=512, seed=s), root / f"m{s}.fits"))
        for s in SEEDS
    ]


@pytest.fixture(scope="module")
def results(
    maps: list[tuple[Path, Table]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[Table]]:
    root = tmp_path_factory.mktemp("jobs")
    return {
        name: [run_job(name, params, path, root / f"{name}-{i}") for i, (path, _) in enumerate(maps)]
        for name, params in FINDERS.items()
    }


@pytest.mark.parametrize("name", list(FINDERS))
def test_accuracy_on_simulated_maps(
    name: str, maps: list[tuple[Path, Table]], results: dict[str, list[Table]]
) -> None:
    n_truth = sum(len(t) for _, t in maps)
    found = vstack(results[name])
    # Pool the matches map by map (positions of different maps must not be matched).
    matches = [
        crossmatch(t, f["ra"], f["dec"], BEAM_ARCSEC, found_flux=f["int_flux"], flux_column="int_flux")
        for (_, t), f in zip(maps, results[name], strict=True)
    ]
    n_truth5 = sum(int((t["snr"] >= 5).sum()) for _, t in maps)
    found5 = sum(
        m.completeness(5) * int((t["snr"] >= 5).sum()) for m, (_, t) in zip(matches, maps, strict=True)
    )
    n_truth10 = sum(int((t["snr"] >= 10).sum()) for _, t in maps)
    found10 = sum(
        m.completeness(10) * int((t["snr"] >= 10).sum()) for m, (_, t) in zip(matches, maps, strict=True)
    )
    spurious = sum(len(m.spurious) for m in matches)
    reliability = 1 - spurious / len(found)
    pos = np.median(np.concatenate([m.separation_arcsec for m in matches]))
    ratio = np.median(np.concatenate([m.flux_ratios(10) for m in matches]))
    print(
        f"\n{name}: n_truth={n_truth} found={len(found)} C5={found5 / n_truth5:.3f} "
        f'C10={found10 / n_truth10:.3f} R={reliability:.4f} pos={pos:.3f}" flux10={ratio:.4f}'
    )
    assert found5 / n_truth5 >= 0.85
    assert found10 / n_truth10 >= 0.98
    assert reliability >= 0.99
    assert pos < 0.2 * BEAM_ARCSEC
    assert abs(ratio - 1) <= 0.05


def _same(service: Table, direct: Table) -> None:
    assert len(service) == len(direct) > 0
    for col in ("ra", "dec", "peak_flux", "int_flux"):
        np.testing.assert_allclose(service[col], direct[col], rtol=1e-9, atol=0)


def test_sfind_service_equals_direct(maps: list[tuple[Path, Table]], results: dict[str, list[Table]]) -> None:
    direct = find_sources(load_image(maps[0][0]))
    _same(results["sfind"][0], direct)


def test_bdsf_service_equals_direct(
    maps: list[tuple[Path, Table]], results: dict[str, list[Table]], tmp_path: Path
) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import bdsf

    img = bdsf.process_image(
        str(maps[0][0]),
        thresh_pix=5.0,
        thresh_isl=3.0,
        flag_maxsize_bm=200.0,
        frequency=1.4e9,
        quiet=True,
        outdir=str(tmp_path),
        ncores=1,
    )
    img.write_catalog(
        outfile=str(tmp_path / "catalog.srl.fits"), format="fits", catalog_type="srl", clobber=True
    )
    direct = Table.read(tmp_path / "catalog.srl.fits")
    direct.rename_columns(["RA", "DEC", "Peak_flux", "Total_flux"], ["ra", "dec", "peak_flux", "int_flux"])
    _same(results["bdsf"][0], direct)


def test_aegean_service_equals_direct(
    maps: list[tuple[Path, Table]], results: dict[str, list[Table]], tmp_path: Path
) -> None:
    image = maps[0][0]
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [
            str(bin_dir / "BANE"),
            "--grid",
            "20",
            "20",
            "--box",
            "100",
            "100",
            "--out",
            str(tmp_path / "b"),
            str(image),
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    subprocess.run(
        [
            str(bin_dir / "aegean"),
            str(image),
            "--background",
            str(tmp_path / "b_bkg.fits"),
            "--noise",
            str(tmp_path / "b_rms.fits"),
            "--seedclip",
            "5",
            "--floodclip",
            "2.6",
            "--maxsummits",
            "3",
            "--table",
            str(tmp_path / "d.vot"),
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    direct = Table.read(tmp_path / "d_comp.vot")
    _same(results["aegean"][0], direct)


@pytest.mark.parametrize("name", list(FINDERS))
def test_pure_noise_is_an_empty_catalogue(name: str, tmp_path: Path) -> None:
    image = tmp_path / "noise.fits"
    write_simulation(SimulationSpec(size=256, seed=9), image, kind="noise")
    table = run_job(name, {}, image, tmp_path / "job")
    assert len(table) == 0
    assert (tmp_path / "job" / "preview.png").is_file()


@pytest.mark.parametrize("name", list(FINDERS))
def test_no_beam_keywords_with_a_beam_parameter(name: str, tmp_path: Path) -> None:
    image = tmp_path / "nobeam.fits"
    truth = write_simulation(SimulationSpec(size=256, seed=8, with_beam_keywords=False), image)
    table = run_job(name, {"bmaj": 9.0, "bmin": 6.0, "bpa": 30.0}, image, tmp_path / "job")
    match = crossmatch(truth, table["ra"], table["dec"], BEAM_ARCSEC)
    assert match.completeness(10) >= 0.95


@pytest.mark.parametrize("name", list(FINDERS))
def test_4d_image_with_nan_corners(name: str, tmp_path: Path) -> None:
    image = tmp_path / "cube.fits"
    truth = write_simulation(SimulationSpec(size=256, seed=7, degenerate_axes=True, nan_corners=True), image)
    table = run_job(name, {}, image, tmp_path / "job")
    match = crossmatch(truth, table["ra"], table["dec"], BEAM_ARCSEC)
    assert match.completeness(10) >= 0.95
    assert match.reliability >= 0.95


@pytest.mark.parametrize("name", list(FINDERS))
def test_real_parkes_map(name: str, tmp_path: Path) -> None:
    image = Path(get_pkg_data_filename("modeling/tests/data/1904-66_AZP.fits", package="astropy"))
    table = run_job(name, {"frequency": 1.4e9} if name == "bdsf" else {}, image, tmp_path / "job")
    assert len(table) >= 3
    assert (tmp_path / "job" / "preview.png").is_file()
    assert read_native(name, tmp_path / "job").colnames[:3] == ["source_id", "island_id", "component_id"]
