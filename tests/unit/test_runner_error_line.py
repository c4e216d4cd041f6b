"""The last stderr line of a failed step goes into the job's reason, read safely."""

from __future__ import annotations

import os
from pathlib import Path

from caesar_runner.executors.local import ERROR_LINE_MAX, last_error_line


def test_the_last_non_blank_line_is_taken(tmp_path: Path) -> None:
    log = tmp_path / "01-aegean.stderr.log"
    log.write_text("Traceback (most recent call last):\n  ...\nValueError: no sources\n\n  \n")
    assert last_error_line(log) == "ValueError: no sources"


def test_only_the_tail_of_a_long_log_is_read_and_the_line_is_bounded(tmp_path: Path) -> None:
    log = tmp_path / "e.log"
    log.write_text("x" * 1_000_000 + "\n" + "y" * 1000 + "\n")
    assert last_error_line(log) == "y" * ERROR_LINE_MAX


def test_nothing_from_an_empty_or_missing_log(tmp_path: Path) -> None:
    (tmp_path / "empty.log").write_text("")
    assert last_error_line(tmp_path / "empty.log") == ""
    assert last_error_line(tmp_path / "missing.log") == ""


def test_a_log_the_job_replaced_by_a_link_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root-only line\n")
    symlinked = tmp_path / "01-a.stderr.log"
    symlinked.symlink_to(secret)
    assert last_error_line(symlinked) == ""
    hardlinked = tmp_path / "02-b.stderr.log"
    os.link(secret, hardlinked)
    assert last_error_line(hardlinked) == ""
