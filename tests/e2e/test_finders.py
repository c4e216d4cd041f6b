"""Source-finder jobs end to end: harmonised catalogues, previews, v1/v2 result routes,
input checks at submit, and the service's catalogue vs a direct run of the same finder."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table
from astropy.utils.data import get_pkg_data_filename

from caesar_runner.catalogs.image import load_image
from caesar_runner.catalogs.sfind import find_sources
from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, crossmatch, write_simulation
from tests.e2e.conftest import submit, upload, wait_state

pytestmark = pytest.mark.e2e
PNG = b"\x89PNG\r\n\x1a\n"
V2 = "/api/v2"


def v2(stack: Stack) -> str:
    return stack.v1.replace("/caesar/api/v1.0", V2)


async def run(
    http: aiohttp.ClientSession, stack: Stack, image: Path, app: str, options: dict[str, Any]
) -> str:
    file_id = await upload(http, stack, image)
    job_id = await submit(http, stack, {"app": app, "job_inputs": options, "data_inputs": file_id})
    final = await wait_state(http, stack, job_id)
    assert final["state"] == "SUCCESS", final
    return job_id


async def refused(
    http: aiohttp.ClientSession, stack: Stack, image: Path, app: str, options: dict[str, Any]
) -> str:
    file_id = await upload(http, stack, image)
    payload = {"app": app, "job_inputs": options, "data_inputs": file_id}
    async with http.post(f"{stack.v1}/job", json=payload) as resp:
        body = await resp.json()
        assert resp.status == 400, body
        return str(body["status"])


async def catalog(http: aiohttp.ClientSession, stack: Stack, job_id: str, fmt: str) -> bytes:
    async with http.get(f"{v2(stack)}/jobs/{job_id}/catalog", params={"format": fmt}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read()


@pytest.fixture(scope="module")
def field(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Table]:
    root = tmp_path_factory.mktemp("field")
    truth = write_simulation(SimulationSpec(size=512, seed=31), root / "field.fits")
    return root / "field.fits", truth


async def test_sfind_job_equals_direct_run_and_serves_every_format(
    http: aiohttp.ClientSession, stack: Stack, field: tuple[Path, Table], tmp_path: Path
) -> None:
    image, truth = field
    job_id = await run(http, stack, image, "sfind", {"seedthr": 5})
    fits_bytes = await catalog(http, stack, job_id, "fits")
    (tmp_path / "c.fits").write_bytes(fits_bytes)
    service = Table.read(tmp_path / "c.fits")
    assert service["int_flux"].unit == u.Jy
    assert service["ra"].unit == u.deg
    direct = find_sources(load_image(image), seed=5.0)
    assert len(service) == len(direct) > 50
    np.testing.assert_allclose(service["ra"], direct["ra"], rtol=1e-12)
    np.testing.assert_allclose(service["int_flux"], direct["int_flux"], rtol=1e-9)
    match = crossmatch(truth, service["ra"], service["dec"], 9.0)
    assert match.completeness(10) >= 0.98

    (tmp_path / "c.vot").write_bytes(await catalog(http, stack, job_id, "votable"))
    assert Table.read(tmp_path / "c.vot", format="votable")["peak_flux"].unit == u.Jy / u.beam
    (tmp_path / "c.csv").write_bytes(await catalog(http, stack, job_id, "csv"))
    csv = Table.read(tmp_path / "c.csv", format="ascii.csv")
    assert len(csv) == len(direct)
    regions = pytest.importorskip("regions")
    (tmp_path / "c.reg").write_bytes(await catalog(http, stack, job_id, "ds9"))
    assert len(regions.Regions.read(str(tmp_path / "c.reg"), format="ds9")) == len(direct)

    async with http.get(f"{stack.v1}/job/{job_id}/sources") as resp:
        doc = await resp.json()
        assert resp.status == 200
        assert doc["n_sources"] == len(direct)
    async with http.get(f"{stack.v1}/job/{job_id}/source-components") as resp:
        assert (await resp.json())["n_sources"] == len(direct)
    for route in ("output-sources", "output-components"):
        async with http.get(f"{stack.v1}/job/{job_id}/{route}") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/csv")
    async with http.get(f"{stack.v1}/job/{job_id}/preview") as resp:
        assert base64.b64decode((await resp.json())["image"])[:8] == PNG
    async with http.get(f"{stack.v1}/job/{job_id}/output-plot") as resp:
        assert (await resp.read())[:8] == PNG
    async with http.get(f"{v2(stack)}/jobs/{job_id}/preview.png") as resp:
        assert resp.headers["Content-Type"] == "image/png"
        assert (await resp.read())[:8] == PNG


async def test_bdsf_job_equals_direct_run(
    http: aiohttp.ClientSession, stack: Stack, field: tuple[Path, Table], tmp_path: Path
) -> None:
    image, _ = field
    job_id = await run(http, stack, image, "bdsf", {})
    (tmp_path / "c.fits").write_bytes(await catalog(http, stack, job_id, "fits"))
    service = Table.read(tmp_path / "c.fits")
    os.environ.setdefault("MPLBACKEND", "Agg")
    import bdsf

    img = bdsf.process_image(
        str(image),
        thresh_pix=5.0,
        thresh_isl=3.0,
        flag_maxsize_bm=200.0,
        frequency=1.4e9,
        quiet=True,
        outdir=str(tmp_path),
        ncores=1,
    )
    img.write_catalog(outfile=str(tmp_path / "d.fits"), format="fits", catalog_type="srl", clobber=True)
    direct = Table.read(tmp_path / "d.fits")
    assert len(service) == len(direct) > 50
    np.testing.assert_allclose(service["ra"], direct["RA"], rtol=1e-12)
    np.testing.assert_allclose(service["int_flux"], direct["Total_flux"], rtol=1e-9)


async def test_files_are_served_from_the_manifest_only(
    http: aiohttp.ClientSession, stack: Stack, field: tuple[Path, Table]
) -> None:
    job_id = await run(http, stack, field[0], "sfind", {})
    async with http.get(f"{v2(stack)}/jobs/{job_id}/files") as resp:
        names = {f["name"] for f in (await resp.json())["files"]}
    assert {"sources.fits", "preview.png", "sfind_catalog.fits", "catalog.json"} <= names
    assert "sources.vot" not in names  # derived on request, not written by the job
    assert not any(n.startswith((".", "tmp/")) or "/." in n for n in names)
    async with http.get(f"{v2(stack)}/jobs/{job_id}/files/manifest.json") as resp:
        manifest = json.loads(await resp.read())
    sources = manifest["catalog"]["catalogs"]["sources"]
    assert sources["native"] == "sfind_catalog.fits"
    assert sources["files"] == {"fits": "sources.fits"}
    assert sources["derived"]["votable"] == "sources.vot"
    assert [s["name"] for s in manifest["steps"]] == ["sfind"]  # finalized in the same process
    async with http.get(f"{v2(stack)}/jobs/{job_id}/files/sources.vot") as resp:
        assert resp.status == 200
        assert b"<VOTABLE" in await resp.read()
    async with http.get(f"{v2(stack)}/jobs/{job_id}/files/sfind_catalog.fits") as resp:
        assert resp.status == 200
        assert (await resp.read())[:6] == b"SIMPLE"
    for bad in ("nope.txt", "..%2Fmanifest.json", "field.fits"):
        async with http.get(f"{v2(stack)}/jobs/{job_id}/files/{bad}") as resp:
            assert resp.status == 404
            assert resp.headers["Content-Type"].startswith("application/problem+json")
            assert (await resp.json())["status"] == 404
    async with http.get(f"{v2(stack)}/jobs/{job_id}/catalog", params={"format": "xls"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["title"] == "Bad Request"


async def test_v2_apps_lists_schema_and_availability(http: aiohttp.ClientSession, stack: Stack) -> None:
    async with http.get(f"{v2(stack)}/apps") as resp:
        apps = {a["name"]: a for a in (await resp.json())["apps"]}
    assert apps["caesar"]["available"] is False
    assert "unavailable_reason" in apps["caesar"]
    for name in ("aegean", "bdsf", "sfind"):
        assert apps[name]["available"] is True
        assert apps[name]["schema"]["type"] == "object"
        assert apps[name]["version"]


async def test_input_checks_at_submit(http: aiohttp.ClientSession, stack: Stack, tmp_path: Path) -> None:
    blank = tmp_path / "blank.fits"
    write_simulation(SimulationSpec(size=64), blank, kind="blank")
    assert "blank" in await refused(http, stack, blank, "sfind", {})
    nobeam = tmp_path / "nobeam.fits"
    truth = write_simulation(SimulationSpec(size=256, seed=4, with_beam_keywords=False), nobeam)
    message = await refused(http, stack, nobeam, "bdsf", {})
    assert "BMAJ" in message
    assert "BMIN" in message
    job_id = await run(http, stack, nobeam, "sfind", {"bmaj": 9, "bmin": 6, "bpa": 30})
    async with http.get(f"{stack.v1}/job/{job_id}/sources") as resp:
        rows = (await resp.json())["sources"]
    match = crossmatch(truth, [r["ra"] for r in rows], [r["dec"] for r in rows], 9.0)
    assert match.completeness(10) >= 0.95


async def test_pure_noise_succeeds_with_an_empty_catalogue(
    http: aiohttp.ClientSession, stack: Stack, tmp_path: Path
) -> None:
    noise = tmp_path / "noise.fits"
    write_simulation(SimulationSpec(size=256, seed=6), noise, kind="noise")
    job_id = await run(http, stack, noise, "sfind", {})
    async with http.get(f"{stack.v1}/job/{job_id}/sources") as resp:
        assert (await resp.json())["sources"] == []


async def test_real_parkes_map(http: aiohttp.ClientSession, stack: Stack, tmp_path: Path) -> None:
    image = tmp_path / "parkes.fits"
    image.write_bytes(
        Path(get_pkg_data_filename("modeling/tests/data/1904-66_AZP.fits", package="astropy")).read_bytes()
    )
    job_id = await run(http, stack, image, "sfind", {})
    async with http.get(f"{stack.v1}/job/{job_id}/sources") as resp:
        assert (await resp.json())["n_sources"] >= 3


async def test_aegean_job_equals_direct_run(
    http: aiohttp.ClientSession, stack: Stack, field: tuple[Path, Table], tmp_path: Path
) -> None:
    image, _ = field
    job_id = await run(http, stack, image, "aegean", {"bkgbox": 100, "bkggrid": 20})
    (tmp_path / "c.fits").write_bytes(await catalog(http, stack, job_id, "fits"))
    service = Table.read(tmp_path / "c.fits")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    bane = [str(bin_dir / "BANE"), "--grid", "20", "20", "--box", "100", "100", "--out", str(tmp_path / "b")]
    subprocess.run([*bane, str(image)], check=True, capture_output=True, env=env)
    maps = ["--background", str(tmp_path / "b_bkg.fits"), "--noise", str(tmp_path / "b_rms.fits")]
    clips = ["--seedclip", "5", "--floodclip", "2.6", "--maxsummits", "3"]
    aegean = [str(bin_dir / "aegean"), str(image), *maps, *clips, "--table", str(tmp_path / "d.vot")]
    subprocess.run(aegean, check=True, capture_output=True, env=env)
    direct = Table.read(tmp_path / "d_comp.vot")
    assert len(service) == len(direct) > 50
    np.testing.assert_allclose(service["ra"], direct["ra"], rtol=1e-12)
    np.testing.assert_allclose(service["int_flux"], direct["int_flux"], rtol=1e-9)


async def test_image_straddling_ra_zero_gives_ra_in_range(
    http: aiohttp.ClientSession, stack: Stack, tmp_path: Path
) -> None:
    image = tmp_path / "ra0.fits"
    truth = write_simulation(SimulationSpec(size=512, seed=41, ra_deg=0.0, dec_deg=-30.0), image)
    for app in ("sfind", "bdsf"):
        job_id = await run(http, stack, image, app, {})
        (tmp_path / f"{app}.fits").write_bytes(await catalog(http, stack, job_id, "fits"))
        found = Table.read(tmp_path / f"{app}.fits")
        ra, dec = np.asarray(found["ra"]), np.asarray(found["dec"])
        assert ((ra >= 0) & (ra < 360)).all(), app
        assert ((dec >= -90) & (dec <= 90)).all(), app
        assert (ra > 359).any(), app  # both sides of RA 0, as one field
        assert (ra < 1).any(), app
        assert crossmatch(truth, ra, dec, 9.0).completeness(10) >= 0.95, app


async def test_concurrent_first_requests_of_a_derived_format_agree(
    http: aiohttp.ClientSession, stack: Stack, field: tuple[Path, Table]
) -> None:
    job_id = await run(http, stack, field[0], "sfind", {})

    async def get(fmt: str) -> bytes:
        return await catalog(http, stack, job_id, fmt)

    for fmt in ("csv", "votable", "json", "ds9"):
        bodies = await asyncio.gather(*(get(fmt) for _ in range(6)))
        assert len(set(bodies)) == 1, fmt
        assert bodies[0] == await get(fmt)  # the cached file: the same bytes again


async def test_output_archive_holds_only_the_jobs_files(
    http: aiohttp.ClientSession, stack: Stack, field: tuple[Path, Table]
) -> None:
    job_id = await run(http, stack, field[0], "aegean", {"bkgbox": 100, "bkggrid": 20})
    await catalog(http, stack, job_id, "csv")  # a derived file is a file of the job too
    async with http.get(f"{stack.v1}/job/{job_id}/output") as resp:
        assert resp.status == 200
        blob = await resp.read()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"sources.fits", "sources.csv", "catalog_comp.vot", "preview.png", "manifest.json"} <= names
    assert not [n for n in names if n.startswith((".", "tmp")) or "/." in n], names
    async with http.get(f"{v2(stack)}/jobs/{job_id}/files") as resp:
        listed = {f["name"] for f in (await resp.json())["files"]}
    assert listed <= names
    assert [n for n in names - listed if n != "sources.csv"] == []
