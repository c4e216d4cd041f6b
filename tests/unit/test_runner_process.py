"""How the runner launches job processes (pure parts)."""

from __future__ import annotations

from pathlib import Path

from caesar_common.jobstate import JobState
from caesar_runner.domain.process import (
    Limits,
    exit_code_of,
    limited_argv,
    outcome_of,
    sanitised_environment,
)


def test_environment_inherits_nothing(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SECRET_TOKEN", "x")
    monkeypatch.setenv("LD_PRELOAD", "/tmp/evil.so")
    env = sanitised_environment(Path("/venv/bin"), Path("/jobs/u/j"), {"OMP_NUM_THREADS": "2"})
    assert "SECRET_TOKEN" not in env
    assert "LD_PRELOAD" not in env
    assert env["PATH"].startswith("/venv/bin:")
    assert env["HOME"] == env["TMPDIR"] == "/jobs/u/j/tmp"  # scratch, not published
    assert env["OMP_NUM_THREADS"] == "2"


def test_limits_wrap_argv_without_a_shell() -> None:
    argv = limited_argv(["aegean", "x; rm -rf /", "$(id)"], Limits(100, 64, 1024))
    assert argv[:4] == ["setpriv", "--pdeathsig", "KILL", "--"]
    assert "--cpu=100" in argv
    assert "--nofile=64" in argv
    assert "--fsize=1024" in argv
    assert "--core=0" in argv
    assert argv[-3:] == ["aegean", "x; rm -rf /", "$(id)"]


def test_exit_codes_and_outcomes() -> None:
    assert exit_code_of(0) == 0
    assert exit_code_of(3 << 8) == 3
    assert exit_code_of(9) == -9
    assert outcome_of(0) is JobState.SUCCESS
    assert outcome_of(1) is JobState.FAILURE
    assert outcome_of(-9) is JobState.FAILURE
