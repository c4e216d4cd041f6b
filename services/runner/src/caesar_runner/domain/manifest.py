"""The job manifest of one finished attempt (pure: the facts in, the model out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from caesar_common.apps.base import Step
from caesar_common.events import OutputFile, RunJob
from caesar_common.layout import JobManifest, ManifestFile, ManifestStep
from caesar_runner.executors.base import ExecutionResult


def build_manifest(
    msg: RunJob,
    *,
    app_version: str,
    parameters: Mapping[str, Any],
    runner_id: str,
    started_at: datetime,
    finished_at: datetime,
    result: ExecutionResult,
    steps: Sequence[Step],
    outputs: Sequence[OutputFile],
    catalog: dict[str, Any] | None,
) -> JobManifest:
    """What ran, on what, with which outcome, and the files it left (sizes, SHA-256)."""
    return JobManifest(
        job_id=msg.job_id,
        attempt=msg.attempt,
        app=msg.app,
        app_version=app_version,
        parameters=dict(parameters),
        input=msg.input,
        runner_id=runner_id,
        started_at=started_at,
        finished_at=finished_at,
        state=result.state,
        exit_code=result.exit_code,
        elapsed_s=round(result.elapsed_s, 3),
        cpu_s=round(result.cpu_s, 3),
        peak_rss_bytes=result.peak_rss_bytes,
        steps=[ManifestStep(name=s.name, argv=list(s.argv)) for s in steps],
        files=[ManifestFile(name=o.name, size_bytes=o.size_bytes, sha256=o.sha256) for o in outputs],
        catalog=catalog,
    )
