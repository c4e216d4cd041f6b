"""The ``caesar`` command against the whole stack (auth off), run as a user runs it: a process.

An aegean job is driven end to end (upload a simulated sky, submit, wait, results in two
formats, the archive), a second job is cancelled, the lists and ``--json`` outputs parse,
a bad option never reaches the server, and a 64 MiB upload shows its progress bar on a
real terminal (a pseudo-terminal) and arrives byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from astropy.io import fits

from caesar_testkit.devstack import Stack
from caesar_testkit.skysim import SimulationSpec, write_simulation

pytestmark = pytest.mark.e2e

CAESAR = str(Path(sys.executable).with_name("caesar"))


def cli_env(stack: Stack, config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAESAR_")}
    return {**env, "CAESAR_URL": stack.api, "XDG_CONFIG_HOME": str(config), "COLUMNS": "120", **extra}


def caesar(
    env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CAESAR, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def ok_json(env: dict[str, str], *args: str, cwd: Path | None = None) -> Any:
    result = caesar(env, *args, "--json", cwd=cwd)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_an_aegean_job_end_to_end(stack: Stack, tmp_path: Path) -> None:
    env = cli_env(stack, tmp_path / "config")
    image = tmp_path / "field.fits"
    write_simulation(SimulationSpec(size=128, seed=5), image, tmp_path / "truth.ecsv")

    apps = ok_json(env, "apps")
    assert "aegean" in {a["name"] for a in apps}
    described = ok_json(env, "describe", "aegean")
    assert "seedthr" in described["schema"]["properties"]

    uploaded = ok_json(env, "upload", str(image), "--tag", "cli-e2e")
    file_id = uploaded["file_id"]
    assert uploaded["size_bytes"] == image.stat().st_size
    assert file_id in {f["file_id"] for f in ok_json(env, "files", "--limit", "0")}

    before = ok_json(env, "jobs", "--limit", "0")
    refused = caesar(env, "submit", "aegean", file_id, "-o", "bkgbox=1", "-o", "seedthr=lots")
    assert refused.returncode == 2, refused.stderr
    assert "bkgbox:" in refused.stderr
    assert "seedthr: expected number" in refused.stderr
    assert ok_json(env, "jobs", "--limit", "0") == before  # nothing reached the server

    job = ok_json(env, "submit", "aegean", file_id, "-o", "seedthr=5", "-o", "bkgbox=40", "--tag", "cli-e2e")
    job_id = job["job_id"]
    assert job["options"]["bkgbox"] == 40

    waited = caesar(env, "wait", job_id, "--json")
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["state"] == "SUCCESS"
    status = ok_json(env, "status", job_id)
    assert status["state"] == "SUCCESS"
    assert status["file_id"] == file_id

    out = tmp_path / "out"
    out.mkdir()
    csv = ok_json(env, "results", job_id, "--format", "csv", "-O", str(out))
    csv_text = Path(csv["path"]).read_text()
    assert csv["size_bytes"] == len(csv_text.encode())
    assert len(csv_text.splitlines()) > 1  # a header and sources
    votable = ok_json(env, "results", job_id, "--format", "votable", "-O", str(out / "sources.vot"))
    assert votable["path"] == str(out / "sources.vot")
    assert "<VOTABLE" in (out / "sources.vot").read_text()
    archive = caesar(env, "results", job_id, "--archive", cwd=out)
    assert archive.returncode == 0, archive.stderr
    with tarfile.open(out / f"{job_id}.tar.gz") as tar:
        names = tar.getnames()
    assert any(name.endswith("manifest.json") for name in names), names

    listed = ok_json(env, "jobs", "--app", "aegean", "--state", "success", "--since", "1h")
    assert job_id in {j["job_id"] for j in listed}
    table = caesar(env, "jobs", "--limit", "5")
    assert table.returncode == 0
    assert job_id in table.stdout

    usage = ok_json(env, "usage", "--group-by", "app")
    assert usage["totals"]["njobs"] >= 1

    missing = caesar(env, "status", "0" * 32)
    assert missing.returncode in (2, 4), missing.stderr  # a well-formed unknown id (4) or a malformed one (2)
    assert missing.stdout == ""
    assert missing.stderr.startswith("Error: HTTP 4")


def test_cancel_another_job(stack: Stack, tmp_path: Path) -> None:
    env = cli_env(stack, tmp_path / "config")
    image = tmp_path / "small.fits"
    write_simulation(SimulationSpec(size=64, seed=2, n_sources=1), image)
    file_id = ok_json(env, "upload", str(image))["file_id"]
    job_id = ok_json(env, "submit", "trivial", file_id, "-o", "seconds=300")["job_id"]
    cancelled = ok_json(env, "cancel", job_id)
    assert cancelled["job_id"] == job_id
    waited = caesar(env, "wait", job_id, "--json", timeout=120)
    assert waited.returncode == 1, waited.stderr
    assert json.loads(waited.stdout)["state"] == "CANCELED"
    again = caesar(env, "cancel", job_id)
    assert again.returncode == 2
    assert "already ended" in again.stderr


def run_with_terminal_stderr(
    args: Sequence[str], env: dict[str, str], timeout: float
) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (so rich draws live progress) and stdout on a pipe."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    code = proc.wait(timeout=timeout)
    return code, out, b"".join(chunks).decode(errors="replace")


def test_a_64_mib_upload_shows_its_progress_and_arrives_whole(stack: Stack, tmp_path: Path) -> None:
    image = tmp_path / "big.fits"
    data = np.random.default_rng(3).standard_normal((4096, 4096), dtype=np.float32)
    fits.PrimaryHDU(data).writeto(image)
    size = image.stat().st_size
    assert size >= 64 * 1024 * 1024
    digest = hashlib.sha256(image.read_bytes()).hexdigest()

    env = cli_env(stack, tmp_path / "config", TERM="xterm-256color")
    code, out, terminal = run_with_terminal_stderr([CAESAR, "upload", str(image), "--json"], env, 300)
    assert code == 0, terminal
    body = json.loads(out)
    assert body["size_bytes"] == size

    assert "upload big.fits" in terminal
    assert "━" in terminal  # the bar
    assert re.search(r"/67\.1 MB", terminal), terminal[-2000:]  # bytes done / total
    assert re.search(r"\d+(\.\d+)? [kMG]?B/s", terminal), terminal[-2000:]  # the speed
    assert "\x1b[" in terminal  # drawn live with terminal control sequences, not printed once

    received = hashlib.sha256()
    with httpx.stream("GET", f"{stack.api}/api/v2/files/{body['file_id']}/content", timeout=120) as resp:
        assert resp.status_code == 200
        for chunk in resp.iter_bytes():
            received.update(chunk)
    assert received.hexdigest() == digest
