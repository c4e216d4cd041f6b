"""Schemathesis with every check against the running api (authentication off).

The api runs as a real process (``python -m caesar_api``) on its own vhost and
databases. ``schemathesis run --checks all`` goes through all four phases: the
documented examples, coverage (boundary and invalid values of every parameter),
fuzzing, and the stateful phase, which follows the OpenAPI links from an upload to the
routes that take its file id and from a submission to those that take its job id. The
answer to every request must match the document: status code, content type, headers
and body, valid data accepted, invalid data refused, no 5xx. Exceptions are listed, with
their reasons, in ``schemathesis.toml`` beside this file.

Bounded and reproducible: a fixed seed, deterministic generation and
``CAESAR_FUZZ_EXAMPLES`` examples per operation (default 20, a minute or two).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from caesar_testkit.devstack import Stack
from tests.conftest import isolated_stack

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
EXAMPLES = int(os.environ.get("CAESAR_FUZZ_EXAMPLES", "20"))


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("fuzz-open")
    # Event streams end after a second (the document's maximum follows), so no generated
    # request holds a stream open for long.
    env = {
        "CAESAR_AUTH_ENABLED": "false",
        "CAESAR_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024),
        "CAESAR_SSE_MAX_STREAM_S": "1",
    }
    # Accounting too: the usage routes ask it (without it they answer a documented 503).
    with isolated_stack(root, ["api", "accounting"], prefix_letter="z", **env) as stack:
        yield stack
    log = root / "logs" / "api.log"
    assert "Traceback" not in (log.read_text(errors="replace") if log.exists() else "")


def run_schemathesis(url: str, report: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "--no-color",
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        "7",
        "--generation-deterministic",
        "--request-timeout",
        "30",
        "--continue-on-failure",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        *extra,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=900, cwd=HERE.parents[1], check=False
    )


def test_api_with_all_checks_and_links(fuzz_api: Stack, tmp_path: Path) -> None:
    report = tmp_path / "events.ndjson"
    result = run_schemathesis(fuzz_api.api, report)
    summary = result.stdout[-6000:]
    print(summary)
    assert result.returncode == 0, summary + result.stderr[-3000:]
    assert "No issues found" in result.stdout or "passed" in result.stdout, summary
    events = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    phases = json.dumps(events)
    assert "Stateful" in phases or "stateful" in phases, "the stateful phase did not run"
