"""Catalogue formats the api derives from the canonical FITS file, and their cache.

What clients' tools read back (TOPCAT's VOTable with units and UCDs, spreadsheets' CSV,
the v1 JSON, DS9 regions), that the first request writes the file once and atomically
next to the canonical one, that concurrent first requests agree, and that records of
jobs finalized before derived formats are still served.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy import units as u
from astropy.io.votable import parse_single_table
from astropy.table import Table

from caesar_api.adapters import catalog_formats, job_files
from caesar_api.adapters.catalog_formats import read_canonical, render
from caesar_api.adapters.job_files import catalog_file, listed_file, preview_file
from caesar_common.layout import JobManifest
from caesar_runner.catalogs.harmonise import CORE_COLUMNS, read_native
from caesar_runner.catalogs.image import load_image
from caesar_runner.catalogs.sfind import OUTPUT_NAME, find_sources
from caesar_runner.catalogs.writers import write_canonical
from caesar_runner.finalize import RECORD, finalize
from caesar_testkit.skysim import SimulationSpec, write_simulation

regions = pytest.importorskip("regions")


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Table]:
    """A finalized sfind job directory (canonical catalogue only) and its harmonised table."""
    job_dir = tmp_path_factory.mktemp("job")
    write_simulation(SimulationSpec(size=256, seed=12), job_dir / "in.fits")
    find_sources(load_image(job_dir / "in.fits")).write(job_dir / OUTPUT_NAME, format="fits")
    finalize("sfind", job_dir, job_dir / "in.fits")
    return job_dir, read_native("sfind", job_dir)


def manifest_of(job_dir: Path) -> JobManifest:
    """The manifest the runner would write: the files present, the finalize record."""
    names = sorted(p.name for p in job_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    return JobManifest.model_validate(
        {
            "job_id": "0" * 32,
            "attempt": 1,
            "app": "sfind",
            "app_version": "1",
            "parameters": {},
            "input": {"file_id": "1" * 32, "ext": "fits", "size_bytes": 1, "sha256": ""},
            "runner_id": "r",
            "started_at": datetime(2026, 1, 1, tzinfo=UTC),
            "finished_at": datetime(2026, 1, 1, tzinfo=UTC),
            "state": "SUCCESS",
            "exit_code": 0,
            "elapsed_s": 1.0,
            "cpu_s": 1.0,
            "peak_rss_bytes": 1,
            "files": [{"name": n, "size_bytes": 1} for n in names],
            "catalog": json.loads((job_dir / RECORD).read_text()),
        }
    )


def copy_job(job: tuple[Path, Table], tmp_path: Path) -> Path:
    """A private copy of the finalized job directory (the derived cache writes into it)."""
    source, _ = job
    target = tmp_path / "job"
    target.mkdir()
    for name in ("sources.fits", "preview.png", RECORD, OUTPUT_NAME):
        (target / name).write_bytes((source / name).read_bytes())
    return target


def test_the_record_lists_what_exists_and_what_is_derived(job: tuple[Path, Table]) -> None:
    job_dir, _ = job
    record = json.loads((job_dir / RECORD).read_text())
    sources = record["catalogs"]["sources"]
    assert sources["canonical"] == "sources.fits"
    assert sources["files"] == {"fits": "sources.fits"}
    assert sources["derived"] == {
        "votable": "sources.vot",
        "csv": "sources.csv",
        "json": "sources.json",
        "ds9": "sources.reg",
    }
    for name in sources["files"].values():
        assert (job_dir / name).is_file()
    for name in sources["derived"].values():
        assert not (job_dir / name).exists()  # made on request only
    assert record["preview"] == "preview.png"


def test_derived_formats_read_back_with_units_and_ucds(job: tuple[Path, Table], tmp_path: Path) -> None:
    job_dir, table = job
    canonical = job_dir / "sources.fits"
    (tmp_path / "c.vot").write_bytes(render(canonical, "votable"))
    vot = Table.read(tmp_path / "c.vot", format="votable")
    assert len(vot) == len(table)
    for spec in CORE_COLUMNS:
        expected = None if spec.unit is None else u.Unit(spec.unit)
        assert vot[spec.name].unit == expected, spec.name
    np.testing.assert_array_equal(vot["ra"], table["ra"])
    fields = {f.name: f for f in parse_single_table(str(tmp_path / "c.vot")).fields}
    assert fields["ra"].ucd == "pos.eq.ra;meta.main"
    assert fields["peak_flux"].ucd == "phot.flux.density;stat.max"
    (tmp_path / "c.csv").write_bytes(render(canonical, "csv"))
    csv = Table.read(tmp_path / "c.csv", format="ascii.csv")
    np.testing.assert_allclose(csv["dec"], table["dec"], rtol=1e-15)
    doc = json.loads(render(canonical, "json"))
    assert doc["n_sources"] == len(table)
    assert doc["finder"] == "sfind"
    assert {c["name"]: c["unit"] for c in doc["columns"]}["int_flux"] == "Jy"
    assert doc["sources"][0]["source_id"] == 1
    (tmp_path / "c.reg").write_bytes(render(canonical, "ds9"))
    assert len(regions.Regions.read(str(tmp_path / "c.reg"), format="ds9")) == len(table)


def test_empty_catalogue_derives_every_format(tmp_path: Path) -> None:
    # No native file: Aegean found nothing.
    canonical = tmp_path / write_canonical(read_native("aegean", tmp_path), tmp_path, "sources")
    assert json.loads(render(canonical, "json"))["sources"] == []
    (tmp_path / "c.vot").write_bytes(render(canonical, "votable"))
    assert len(Table.read(tmp_path / "c.vot", format="votable")) == 0
    (tmp_path / "c.reg").write_bytes(render(canonical, "ds9"))
    assert len(regions.Regions.read(str(tmp_path / "c.reg"), format="ds9")) == 0


def test_strings_come_back_as_text(tmp_path: Path) -> None:
    table = Table({"ra": [1.0], "s_code": ["M"]})
    table.write(tmp_path / "t.fits", format="fits")
    back = read_canonical(tmp_path / "t.fits")
    assert back["s_code"][0] == "M"
    assert json.loads(render(tmp_path / "t.fits", "json"))["sources"] == [{"ra": 1.0, "s_code": "M"}]


def test_first_request_caches_next_to_the_canonical_file(
    job: tuple[Path, Table], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_dir = copy_job(job, tmp_path)
    manifest = manifest_of(job_dir)
    path = catalog_file(job_dir, manifest, "sources", "csv")
    assert path == (job_dir / "sources.csv").resolve()
    first = path.read_bytes()
    assert first == render(job_dir / "sources.fits", "csv")
    calls: list[str] = []

    def no_render(canonical: Path, fmt: str) -> bytes:
        calls.append(fmt)
        return b""

    monkeypatch.setattr(job_files, "render", no_render)
    assert catalog_file(job_dir, manifest, "sources", "csv") == path  # from the cache
    assert calls == []
    assert catalog_file(job_dir, manifest, "sources", "fits") == (job_dir / "sources.fits").resolve()
    assert catalog_file(job_dir, manifest, "components", "csv") == path  # same table for sfind
    assert not [p for p in job_dir.iterdir() if p.name.startswith(".")]  # no temporary left


def test_concurrent_first_requests_render_once_and_agree(
    job: tuple[Path, Table], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_dir = copy_job(job, tmp_path)
    manifest = manifest_of(job_dir)
    renders: list[str] = []
    start = threading.Barrier(8)

    def counting_render(canonical: Path, fmt: str) -> bytes:
        renders.append(fmt)
        return render(canonical, fmt)

    def request(_: int) -> bytes:
        start.wait()
        path = catalog_file(job_dir, manifest, "sources", "votable")
        assert path is not None
        return path.read_bytes()

    monkeypatch.setattr(job_files, "render", counting_render)
    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(request, range(8)))
    assert renders == ["votable"]
    assert len(set(bodies)) == 1
    assert bodies[0] == render(job_dir / "sources.fits", "votable")


def test_writers_in_other_processes_never_share_a_temporary(tmp_path: Path) -> None:
    # Two api processes rendering the same file: each renames its own complete file.
    target = tmp_path / "sources.csv"
    job_files.write_atomically(target, b"a,b\n1,2\n")
    job_files.write_atomically(target, b"a,b\n1,2\n")
    assert target.read_bytes() == b"a,b\n1,2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["sources.csv"]


def test_a_job_directory_the_api_cannot_write_gets_a_private_copy(
    job: tuple[Path, Table], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_dir = copy_job(job, tmp_path)
    manifest = manifest_of(job_dir)
    real = job_files.write_atomically

    def read_only(target: Path, data: bytes) -> None:
        if target.parent == job_dir.resolve():
            raise PermissionError(13, "read-only", str(target))
        real(target, data)

    monkeypatch.setattr(job_files, "write_atomically", read_only)
    path = catalog_file(job_dir, manifest, "sources", "json")
    assert path is not None
    assert not path.is_relative_to(job_dir.resolve())
    assert json.loads(path.read_bytes())["finder"] == "sfind"
    assert not (job_dir / "sources.json").exists()


def test_derived_names_are_served_as_files_too(job: tuple[Path, Table], tmp_path: Path) -> None:
    job_dir = copy_job(job, tmp_path)
    manifest = manifest_of(job_dir)
    assert "sources.reg" not in manifest.file_names()
    path = listed_file(job_dir, manifest, "sources.reg")
    assert path is not None
    assert path.read_text().startswith("# Region file format: DS9")
    assert listed_file(job_dir, manifest, "sources.xls") is None
    assert listed_file(job_dir, manifest, "in.fits") is None  # present, not listed
    assert preview_file(job_dir, manifest) == (job_dir / "preview.png").resolve()


def _tampered(manifest: JobManifest, **changes: Any) -> JobManifest:
    record = json.loads(json.dumps(manifest.catalog))
    record["catalogs"]["sources"].update(changes)
    return manifest.model_copy(update={"catalog": record})


def test_a_derived_name_never_leaves_the_job_directory(job: tuple[Path, Table], tmp_path: Path) -> None:
    job_dir = copy_job(job, tmp_path)
    manifest = manifest_of(job_dir)
    outside = _tampered(manifest, derived={"csv": "../escape.csv"})
    assert catalog_file(job_dir, outside, "sources", "csv") is None
    assert not (tmp_path / "escape.csv").exists()
    unlisted = _tampered(manifest, canonical="in.fits")
    assert catalog_file(job_dir, unlisted, "sources", "csv") is None
    assert catalog_file(job_dir, _tampered(manifest, derived={"xls": "s.xls"}), "sources", "xls") is None


def test_records_of_older_jobs_with_every_format_are_served_as_listed(tmp_path: Path) -> None:
    (tmp_path / "sources.csv").write_text("ra\n1\n")
    manifest = JobManifest.model_validate(
        {
            **json.loads(manifest_of_minimal(tmp_path)),
            "catalog": {"catalogs": {"sources": {"files": {"csv": "sources.csv"}}}},
        }
    )
    assert catalog_file(tmp_path, manifest, "sources", "csv") == (tmp_path / "sources.csv").resolve()
    assert catalog_file(tmp_path, manifest, "sources", "json") is None


def manifest_of_minimal(job_dir: Path) -> str:
    (job_dir / RECORD).write_text(json.dumps({"catalogs": {}}))
    return manifest_of(job_dir).model_dump_json()


def test_derivers_cover_the_served_formats() -> None:
    assert set(catalog_formats.DERIVERS) == {"votable", "csv", "json", "ds9"}
