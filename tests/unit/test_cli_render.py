"""What ``caesar`` shows people: the tables and the live status line, rendered to text."""

from __future__ import annotations

from io import StringIO

from rich.console import Console, RenderableType

from caesar_cli.render import (
    duration,
    human_bytes,
    job_table,
    jobs_table,
    option_range,
    schema_table,
    short_time,
    status_line,
    usage_table,
)
from caesar_common.apps import APPS


def text(renderable: RenderableType) -> str:
    out = StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


def test_durations_sizes_and_times() -> None:
    assert [duration(s) for s in (None, 0, 61.9, 3723)] == ["", "0:00", "1:01", "1:02:03"]
    assert human_bytes(67_111_680) == "67.1 MB"
    assert human_bytes(None) == ""
    assert short_time("2026-11-30T17:04:05.123+00:00") == "2026-11-30 17:04:05"
    assert short_time("not a time") == "not a time"


def test_allowed_values_of_an_option() -> None:
    assert option_range({"minimum": 5, "maximum": 10}) == "[5, 10]"
    assert option_range({"exclusiveMinimum": 0}) == "(0, ]"
    assert option_range({"enum": ["a", "b"]}) == "a, b"
    assert option_range({"type": "string"}) == ""


def test_schema_table_of_a_real_app_lists_every_option() -> None:
    schema = APPS["aegean"].json_schema()
    shown = text(schema_table({"name": "aegean", "version": "2.3.5", "schema": schema}))
    for name in schema["properties"]:
        assert name in shown
    assert "[5, 10000]" in shown  # bkgbox
    assert "false" in shown  # boolean defaults as JSON


def test_job_tables_show_what_is_set() -> None:
    job = {
        "job_id": "j1",
        "app": "aegean",
        "state": "HELD",
        "hold_reason": "running_jobs 1/1",
        "queue_position": None,
        "elapsed_s": 75.0,
        "submitted_at": "2026-11-30T17:04:05+00:00",
        "options": {"nocov": True, "bkgbox": 50},
    }
    one = text(job_table(job))
    assert "running_jobs 1/1" in one
    assert "1:15" in one
    assert "nocov=true, bkgbox=50" in one
    assert "queue_position" not in one
    many = text(jobs_table([job, {"job_id": "j2", "app": "sfind", "state": "SUCCESS"}]))
    assert "j1" in many
    assert "j2" in many
    assert "2026-11-30 17:04:05" in many


def test_usage_table_has_a_row_per_group_and_the_totals() -> None:
    report = {
        "group_by": "app",
        "rows": [{"app": "aegean", "njobs": 2, "cpu_s": 1.5}, {"app": "sfind", "njobs": 1, "cpu_s": 0.25}],
        "totals": {"njobs": 3, "cpu_s": 1.75},
    }
    lines = [line for line in text(usage_table(report)).splitlines() if "aegean" in line or "total" in line]
    assert [line.split() for line in lines] == [
        ["│", "aegean", "│", "2", "│", "1.50", "│"],
        ["│", "total", "│", "3", "│", "1.75", "│"],
    ]


def test_status_line() -> None:
    assert status_line("j1", "RUNNING", 125).plain == "job j1: RUNNING  elapsed 2:05"
    assert status_line("j1", "QUEUED", None).plain == "job j1: QUEUED"
