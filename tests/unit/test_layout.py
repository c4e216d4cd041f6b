"""The shared file layout and the job manifest (pure paths; read/write on a tmp dir)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from caesar_common import layout
from caesar_common.layout import JobManifest, LayoutError

OWNER = "alice"
FILE_ID = "0123456789abcdef0123456789abcdef"
JOB_ID = "11111111-1111-4111-8111-111111111111"
ROOT = Path("/srv/caesar")


def test_upload_and_job_paths() -> None:
    assert layout.upload_path(ROOT, OWNER, FILE_ID, "fits") == ROOT / OWNER / f"{FILE_ID}.fits"
    assert layout.upload_temp_path(ROOT, OWNER, FILE_ID) == ROOT / OWNER / f".upload-{FILE_ID}.part"
    assert layout.upload_temp_path(ROOT, OWNER, FILE_ID).relative_to(ROOT).match(layout.UPLOAD_TEMP_GLOB)
    assert layout.job_dir(ROOT, OWNER, JOB_ID) == ROOT / OWNER / JOB_ID
    assert layout.manifest_path(ROOT / JOB_ID) == ROOT / JOB_ID / "manifest.json"
    assert layout.staged_input_name(FILE_ID, "fits") == f"{FILE_ID}.fits"
    assert (layout.archive_root(JOB_ID), layout.archive_filename(JOB_ID)) == (JOB_ID, f"{JOB_ID}.tar.gz")


def test_temporary_names() -> None:
    assert layout.hidden_temp_name("catalog.json") == ".catalog.json.tmp"
    first, second = layout.private_temp_name("manifest.json"), layout.private_temp_name("manifest.json")
    assert first != second
    assert first.startswith("manifest.json.")
    assert first.endswith(".tmp")


@pytest.mark.parametrize("owner", ["..", ".", "../etc", "a/b", "", "-x", "a\x00"])
def test_unsafe_owners_are_refused(owner: str) -> None:
    with pytest.raises(LayoutError):
        layout.job_dir(ROOT, owner, JOB_ID)
    with pytest.raises(LayoutError):
        layout.upload_path(ROOT, owner, FILE_ID, "fits")


NOT_OURS = "AAAAAAAA-1111-4111-8111-111111111111"  # upper case: not a job id we generate


@pytest.mark.parametrize("job_id", ["..", "../../etc/passwd", NOT_OURS, JOB_ID + "/x", ""])
def test_ids_that_are_not_ours_are_refused(job_id: str) -> None:
    with pytest.raises(LayoutError):
        layout.job_dir(ROOT, OWNER, job_id)
    with pytest.raises(LayoutError):
        layout.archive_root(job_id)


@pytest.mark.parametrize(
    ("file_id", "ext"),
    [("../x", "fits"), (FILE_ID, "../fits"), (FILE_ID, "FITS"), (FILE_ID, ""), (JOB_ID, "fits")],
)
def test_upload_names_that_are_not_ours_are_refused(file_id: str, ext: str) -> None:
    with pytest.raises(LayoutError):
        layout.upload_path(ROOT, OWNER, file_id, ext)


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../b", "", ".", "a//b", "a\\b", "sub/./x"])
def test_job_file_refuses_escapes(name: str) -> None:
    with pytest.raises(LayoutError):
        layout.job_file(ROOT / JOB_ID, name)


def test_job_file_accepts_nested_names() -> None:
    assert layout.job_file(ROOT / JOB_ID, "maps/bkg.fits") == ROOT / JOB_ID / "maps" / "bkg.fits"


def runner_manifest() -> dict[str, Any]:
    """A manifest dict built exactly as the runner's ``_execute`` builds it."""
    return {
        "job_id": JOB_ID,
        "attempt": 2,
        "app": "sfind",
        "app_version": "1.0",
        "parameters": {"seedthr": 5.0, "mergeedge": True, "name": "x"},
        "input": {"file_id": FILE_ID, "ext": "fits", "size_bytes": 1234, "sha256": "f" * 64},
        "runner_id": "host-1",
        "started_at": datetime(2026, 5, 4, 10, 0, 0, 123456, tzinfo=UTC).isoformat(),
        "finished_at": datetime(2026, 5, 4, 10, 1, tzinfo=UTC).isoformat(),
        "state": "SUCCESS",
        "exit_code": 0,
        "elapsed_s": 60.123,
        "cpu_s": 12.5,
        "peak_rss_bytes": 1 << 20,
        "steps": [{"name": "sfind", "argv": ["/venv/bin/python", "-m", "caesar_runner.catalogs.sfind"]}],
        "files": [{"name": "sources.csv", "size_bytes": 10, "sha256": "a" * 64}],
        "catalog": {"app": "sfind", "catalogs": {}, "preview": "preview.png"},
    }


def test_manifest_matches_what_the_runner_writes(tmp_path: Path) -> None:
    written = json.dumps(runner_manifest(), indent=2, default=str)
    manifest = JobManifest.model_validate_json(written)
    assert manifest.state.value == "SUCCESS"
    assert manifest.file_names() == {"sources.csv"}
    assert manifest.to_json() == written  # byte for byte
    path = layout.write_manifest(tmp_path, manifest)
    assert path == tmp_path / "manifest.json"
    assert json.loads(path.read_text()) == runner_manifest()
    assert layout.read_manifest(tmp_path) == manifest
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temporary left


def test_manifest_without_catalog_or_with_extra_keys_still_reads() -> None:
    raw = runner_manifest()
    del raw["catalog"]
    raw["added_later"] = 1
    assert JobManifest.model_validate(raw).catalog is None


@pytest.mark.parametrize("text", [None, "{not json", '{"job_id": 1}', "[]"])
def test_missing_or_malformed_manifest_reads_as_none(tmp_path: Path, text: str | None) -> None:
    if text is not None:
        (tmp_path / "manifest.json").write_text(text)
    assert layout.read_manifest(tmp_path) is None
