"""pyvo drives a real aegean job through the UWS job list, from creation to catalogue.

All five services run as processes (``caesar_testkit.devstack``); pyvo's generic UWS
job client (``pyvo.dal.AsyncTAPJob``, which speaks plain UWS 1.1 on a job URL) creates
nothing by itself, so the job is created with a form POST on pyvo's own session, as any
UWS client would, and pyvo then runs it, waits for it (``WAIT`` long polls, several of
them: the server maximum is short here), reads its results and fetches the catalogue.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from astropy.table import Table
from pyvo.dal import AsyncTAPJob
from pyvo.dal.query import DALServiceError
from pyvo.io.uws import parse_job_list

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, crossmatch, write_simulation
from tests.e2e.conftest import make_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from make_stack(
        tmp_path_factory.mktemp("uws"), CAESAR_UWS_MAX_WAIT_S="4", CAESAR_UWS_WAIT_POLL_S="0.5"
    )


def upload(session: requests.Session, stack: Stack, image: Path) -> str:
    with image.open("rb") as fh:
        resp = session.post(
            f"{stack.v1}/upload", files={"file": (image.name, fh, "application/fits")}, timeout=60
        )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["uuid"])


def diagnosis(session: requests.Session, job: AsyncTAPJob) -> str:
    """Why a job did not complete: its UWS error and the end of each of its logs."""
    parts = [session.get(f"{job.url}/error", timeout=30).text]
    for result in job.results:
        if result.id_.startswith("log-"):
            parts.append(f"--- {result.id_}\n{session.get(result.href, timeout=30).text[-3000:]}")
    return "\n".join(parts)


def test_pyvo_runs_an_aegean_job_from_create_to_catalogue(stack: Stack, tmp_path: Path) -> None:
    spec = SimulationSpec(size=512, seed=23)
    image = tmp_path / "field.fits"
    truth = write_simulation(spec, image)
    session = requests.Session()
    file_id = upload(session, stack, image)
    job_list = f"{stack.api}/uws/aegean"

    created = session.post(
        job_list,
        data={"inputfile": file_id, "bkgbox": "100", "bkggrid": "20", "RUNID": "pyvo-e2e"},
        timeout=30,
    )
    assert created.history[0].status_code == 303, created.text
    job = AsyncTAPJob(created.url, session=session, delete=False)
    assert job.phase == "PENDING"
    assert job.owner == "anonymous"
    assert {p.id_: p.content for p in job.job.parameters} == {
        "bkgbox": "100",
        "bkggrid": "20",
        "inputfile": file_id,
    }
    assert job.uws_version == "1.1"

    job.run()
    job.wait(phases={"COMPLETED", "ERROR", "ABORTED"}, timeout=300)
    assert job.phase == "COMPLETED", diagnosis(session, job)
    job.raise_if_error()
    assert job.job.runid == "pyvo-e2e"
    assert job.job.starttime is not None
    assert job.job.endtime is not None

    results = {r.id_: r.href for r in job.results}
    assert {"result", "sources-votable", "sources-fits", "sources-csv", "preview"} <= set(results)
    assert any(name.startswith("log-") for name in results)

    # pyvo's own download of the TAP-style "result": the sources VOTable, parsed.
    catalogue = job.fetch_result().to_table()
    assert len(catalogue) > 50
    match = crossmatch(truth, catalogue["ra"], catalogue["dec"], spec.beam.bmaj_arcsec)
    assert match.completeness(snr_min=10.0) >= 0.9

    fits_bytes = session.get(results["sources-fits"], timeout=60)
    assert fits_bytes.status_code == 200
    assert len(Table.read(io.BytesIO(fits_bytes.content), format="fits")) == len(catalogue)

    listing = parse_job_list(
        io.BytesIO(session.get(job_list, params={"PHASE": "COMPLETED"}, timeout=30).content)
    )
    assert [(ref.jobid, ref.phase) for ref in listing] == [(job.job_id, "COMPLETED")]

    job.delete()
    archived = AsyncTAPJob(created.url, session=session, delete=False)
    assert archived.phase == "ARCHIVED"
    assert archived.results == []
    with pytest.raises(DALServiceError):
        archived.wait()  # an archived job is not active: pyvo refuses to wait on it
