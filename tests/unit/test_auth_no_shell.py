"""Nothing a client sends can reach a shell: no code path can start one.

Two proofs: a scan of every service's source for the ways Python starts a shell
(``shell=True``, ``os.system``, ``os.popen``, ``create_subprocess_shell``...), and a run
of the local executor with shell metacharacters in every argument, under an audit hook
that sees every process the interpreter starts.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from caesar_common.apps.base import Step
from caesar_common.jobstate import JobState
from caesar_runner.executors.base import JobSpec
from caesar_runner.executors.local import LocalExecutor

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "libs" / "common" / "src", *sorted((ROOT / "services").glob("*/src"))]
SHELL_CALLS = {
    "system",
    "popen",
    "create_subprocess_shell",
    "getoutput",
    "getstatusoutput",
    "spawnl",
    "spawnlp",
    "spawnv",
    "spawnvp",
}
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "csh", "tcsh", "fish", "busybox"}
META = [
    "; touch /tmp/caesar-pwned",
    "$(touch /tmp/caesar-pwned)",
    "`id`",
    "| cat",
    "&& id",
    "> x",
    "*",
    "'\"",
]


def python_files() -> list[Path]:
    return [p for src in SOURCES for p in src.rglob("*.py")]


def test_no_source_can_start_a_shell() -> None:
    offences = []
    files = python_files()
    assert len(files) > 30
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in SHELL_CALLS:
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}()")
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno} shell=")
            # A literal shell as the program: ["sh", "-c", ...] / ("/bin/bash", ...).
            for arg in node.args[:1]:
                if isinstance(arg, ast.List | ast.Tuple) and arg.elts:
                    first = arg.elts[0]
                    if isinstance(first, ast.Constant) and os.path.basename(str(first.value)) in SHELLS:
                        offences.append(f"{path.relative_to(ROOT)}:{node.lineno} {first.value!r}")
    assert not offences, offences


async def test_executor_passes_metacharacters_verbatim_and_starts_no_shell(tmp_path: Path) -> None:
    started: list[str] = []

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "subprocess.Popen":
            started.append(os.path.basename(os.fsdecode(args[0])))
        elif event in {"os.system", "os.posix_spawn", "os.exec"}:
            started.append(f"{event}:{args[0]!r}")

    sys.addaudithook(audit)  # cannot be removed; it only records into this list
    if os.path.exists("/tmp/caesar-pwned"):
        os.unlink("/tmp/caesar-pwned")
    echo = "import sys, json; print(json.dumps(sys.argv[1:]))"
    executor = LocalExecutor(Path(sys.executable).parent, slots=1, kill_grace_s=1.0)
    job = JobSpec(
        "job",
        "anonymous",
        1,
        "test",
        (Step("echo", (sys.executable, "-c", echo, *META)),),
        tmp_path,
        60,
        1,
        256,
    )
    result = await executor.run(job, _noop, asyncio.Event())
    assert result.state is JobState.SUCCESS, result
    assert json.loads((tmp_path / "00-echo.stdout.log").read_text()) == META
    assert not os.path.exists("/tmp/caesar-pwned")
    assert started, "the audit hook saw no process start"
    assert not [s for s in started if s in SHELLS or s.startswith("os.system")], started


async def _noop(pid: int | None) -> None:
    return None


def test_job_limits_include_address_space_with_headroom() -> None:
    from caesar_runner.domain.process import Limits, address_space_bytes, limited_argv

    assert address_space_bytes(0) == 8 * 2**30  # floor
    assert address_space_bytes(4096) == 16 * 2**30  # 4x the hint
    argv = limited_argv(["app"], Limits(10, 64, 1024, address_space_bytes(100)))
    assert f"--as={8 * 2**30}" in argv
    assert "--as" not in " ".join(limited_argv(["app"], Limits(10, 64, 1024)))


async def test_job_directory_is_private(tmp_path: Path) -> None:
    job_dir = tmp_path / "owner" / "job"
    job_dir.mkdir(parents=True, mode=0o777)
    os.chmod(job_dir, 0o777)  # noqa: S103 (the test starts from a too-open directory)
    executor = LocalExecutor(Path(sys.executable).parent, slots=1, kill_grace_s=1.0)
    job = JobSpec(
        "job", "anonymous", 1, "test", (Step("ok", (sys.executable, "-c", "pass")),), job_dir, 60, 1, 64
    )
    result = await executor.run(job, _noop, asyncio.Event())
    assert result.state is JobState.SUCCESS, result
    assert job_dir.stat().st_mode & 0o777 == 0o750
    assert (job_dir / "tmp").stat().st_mode & 0o777 == 0o700
