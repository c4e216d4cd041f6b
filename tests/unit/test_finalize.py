"""The finalize step: where it runs, what it writes, and which files are a job's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caesar_common.apps import PlanContext, get_app
from caesar_common.job_outputs import is_job_output
from caesar_runner import finalize as finalize_module
from caesar_runner.adapters.outputs import describe_outputs
from caesar_runner.catalogs import aegean_run, sfind
from caesar_runner.finalize import FINALIZE_FLAG, IN_PROCESS, RECORD, finalize_step, read_record
from caesar_testkit.skysim import SimulationSpec, write_simulation


def ctx(tmp_path: Path) -> PlanContext:
    return PlanContext(tmp_path / "in.fits", tmp_path / "job", tmp_path / "bin")


@pytest.mark.parametrize("name", sorted(IN_PROCESS))
def test_in_process_apps_finalize_in_their_own_step(name: str, tmp_path: Path) -> None:
    app = get_app(name)
    assert app is not None
    *before, last = app.plan(app.validate({}), ctx(tmp_path))
    assert FINALIZE_FLAG in last.argv  # the finder's last step finalizes ...
    assert all(FINALIZE_FLAG not in s.argv for s in before)
    assert finalize_step(name, ctx(tmp_path)) is None  # ... so no second process


def test_an_app_not_finalized_in_process_gets_a_separate_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(finalize_module, "IN_PROCESS", frozenset())
    step = finalize_step("aegean", ctx(tmp_path))
    assert step is not None
    assert step.argv[1:] == (
        "-m",
        "caesar_runner.finalize",
        "--app",
        "aegean",
        "--job-dir",
        str(tmp_path / "job"),
        "--input",
        str(tmp_path / "in.fits"),
    )
    assert finalize_step("trivial", ctx(tmp_path)) is None  # no catalogue reader


def test_aegean_wrapper_finds_job_directory_and_image() -> None:
    args = ["/d/in.fits", "--seedclip", "5", "--table", "/j/catalog.vot,/j/catalog.csv", "--cores", "1"]
    assert aegean_run.outputs_of(args) == (Path("/j"), Path("/d/in.fits"))
    with pytest.raises(ValueError, match="first"):
        aegean_run.outputs_of(["--table", "/j/c.vot", "/d/in.fits"])
    with pytest.raises(ValueError, match="--table"):
        aegean_run.outputs_of(["/d/in.fits"])
    with pytest.raises(ValueError, match="--table"):
        aegean_run.main(["/d/in.fits", "--finalize"])  # refused before Aegean runs


def test_sfind_finalize_flag_writes_canonical_catalogue_preview_and_record(tmp_path: Path) -> None:
    write_simulation(SimulationSpec(size=128, seed=3), tmp_path / "in.fits")
    out = tmp_path / "job"
    assert sfind.main([str(tmp_path / "in.fits"), "--outdir", str(out), "--finalize"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        RECORD,
        "preview.json",
        "preview.png",
        "sfind_catalog.fits",
        "sources.fits",
    ]
    record = read_record(out)
    assert record is not None
    assert record == json.loads((out / RECORD).read_text())
    assert record["catalogs"]["sources"]["files"] == {"fits": "sources.fits"}
    assert record["catalogs"]["sources"]["n_rows"] > 0
    assert record["preview"] == "preview.png"


@pytest.mark.parametrize(
    ("name", "published"),
    [
        ("sources.fits", True),
        ("plots/preview.png", True),
        ("tmp", False),
        ("tmp/scratch.bin", False),
        ("tmp/.cache/matplotlib/fontlist-v390.json", False),
        (".cache/matplotlib/fontlist-v390.json", False),
        (".config/matplotlib", False),
        ("sub/.hidden", False),
        (".sources.csv.123.abcd.tmp", False),
        ("tmpfile.txt", True),
    ],
)
def test_which_files_are_job_outputs(name: str, published: bool) -> None:
    assert is_job_output(name) is published


def test_the_manifest_lists_outputs_only(tmp_path: Path) -> None:
    for name in ("sources.fits", "tmp/.cache/x", ".config/matplotlib/y", "tmp/z", "logs/00-a.stdout.log"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert [f.name for f in describe_outputs(tmp_path, set())] == ["logs/00-a.stdout.log", "sources.fits"]
