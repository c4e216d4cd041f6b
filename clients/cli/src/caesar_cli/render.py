"""What the reading commands print: rich tables for people, and their pure building blocks.

Formatting is kept free of I/O (each function returns a renderable or a string) so the
tables are tested without a terminal; ``--json`` bypasses all of this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.filesize import decimal
from rich.table import Table
from rich.text import Text

STATE_STYLES = {
    "SUCCESS": "green",
    "FAILURE": "red",
    "TIMED_OUT": "red",
    "TIMED-OUT": "red",
    "ABORTED": "red",
    "CANCELED": "yellow",
    "DELETED": "dim",
    "HELD": "magenta",
    "RUNNING": "cyan",
    "STARTED": "cyan",
}


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def human_bytes(n: float | None) -> str:
    """Decimal units, as the progress bars show them (``20.0 MB``)."""
    return "" if n is None else decimal(int(n))


def duration(seconds: float | None) -> str:
    """``1:02:03`` / ``2:03``: what a person reads at a glance."""
    if seconds is None:
        return ""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def short_time(value: str | None) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS`` (the offset dropped: the server's are UTC)."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def apps_table(apps: Iterable[Mapping[str, Any]]) -> Table:
    table = Table("app", "version", "available", "executors", "description", title="Apps")
    for app in apps:
        available = Text("yes", style="green") if app.get("available") else Text("no", style="dim")
        description = str(app.get("description") or app.get("unavailable_reason") or "")
        table.add_row(
            str(app.get("name", "")),
            str(app.get("version", "")),
            available,
            ", ".join(app.get("executors") or []),
            description.split(". ")[0],
        )
    return table


def option_type(prop: Mapping[str, Any]) -> str:
    declared = prop.get("type", "string")
    return " | ".join(declared) if isinstance(declared, list) else str(declared)


def option_range(prop: Mapping[str, Any]) -> str:
    """Allowed values: an enum's members or a numeric interval."""
    if "enum" in prop:
        return ", ".join(str(v) for v in prop["enum"])
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum", prop.get("exclusiveMaximum"))
    if low is None and high is None:
        return ""
    left = "(" if "exclusiveMinimum" in prop else "["
    right = ")" if "exclusiveMaximum" in prop else "]"
    return f"{left}{'' if low is None else low}, {'' if high is None else high}{right}"


def schema_table(app: Mapping[str, Any]) -> Table:
    """The options of an app: name, type, default, allowed values, description."""
    schema: Mapping[str, Any] = app.get("schema") or {}
    props: Mapping[str, Any] = schema.get("properties") or {}
    title = f"{app.get('name', '')} {app.get('version', '')}: options (-o name=value)"
    table = Table("option", "type", "default", "allowed", "description", title=title)
    for name, prop in props.items():
        label = Text(name, style="dim" if prop.get("x-advanced") else "bold")
        default = prop.get("default")
        table.add_row(
            label,
            option_type(prop),
            "" if default is None else _json_scalar(default),
            option_range(prop),
            str(prop.get("description", "")),
        )
    return table


def _json_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


JOB_FIELDS: Sequence[str] = (
    "job_id",
    "app",
    "state",
    "attempt",
    "pool",
    "file_id",
    "tag",
    "reason",
    "hold_reason",
    "queue_position",
    "exit_code",
    "elapsed_s",
    "submitted_at",
    "started_at",
    "ended_at",
)


def job_table(job: Mapping[str, Any]) -> Table:
    """One job as field/value rows (only the fields the server gave and that are set)."""
    table = Table("field", "value", show_header=False, title=f"Job {job.get('job_id', '')}")
    for name in JOB_FIELDS:
        value = job.get(name)
        if value in (None, "", {}):
            continue
        if name == "state":
            table.add_row(name, state_text(str(value)))
        elif name == "elapsed_s":
            table.add_row("elapsed", duration(float(value)))
        elif name.endswith("_at"):
            table.add_row(name, short_time(str(value)))
        else:
            table.add_row(name, str(value))
    options = job.get("options")
    if options:
        table.add_row("options", ", ".join(f"{k}={_json_scalar(v)}" for k, v in options.items()))
    return table


def jobs_table(jobs: Iterable[Mapping[str, Any]]) -> Table:
    table = Table("job_id", "app", "state", "submitted", "elapsed", "tag", title="Jobs")
    for job in jobs:
        elapsed = job.get("elapsed_s")
        table.add_row(
            str(job.get("job_id", "")),
            str(job.get("app", "")),
            state_text(str(job.get("state", ""))),
            short_time(job.get("submitted_at")),
            duration(float(elapsed)) if elapsed is not None else "",
            str(job.get("tag") or ""),
        )
    return table


def files_table(files: Iterable[Mapping[str, Any]]) -> Table:
    table = Table("file_id", "filename", "format", "size", "uploaded", "tag", title="Files")
    for f in files:
        table.add_row(
            str(f.get("file_id", "")),
            str(f.get("filename", "")),
            str(f.get("format", "")),
            human_bytes(f.get("size_bytes")),
            short_time(f.get("uploaded_at")),
            str(f.get("tag") or ""),
        )
    return table


def usage_table(report: Mapping[str, Any]) -> Table:
    """The usage report: one row per group, then the totals."""
    totals: Mapping[str, Any] = report.get("totals") or {}
    rows: Sequence[Mapping[str, Any]] = report.get("rows") or []
    group = str(report.get("group_by") or (next(iter(rows[0])) if rows else "group"))
    columns = [group, *totals]
    table = Table(*columns, title="Usage")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    table.add_row(Text("total", style="bold"), *(_cell(totals.get(c)) for c in columns[1:]))
    return table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "" if value is None else str(value)


def status_line(job_id: str, state: str, elapsed_s: float | None) -> Text:
    """The live line of ``wait``: which job, its state, how long it has been going."""
    line = Text(f"job {job_id}: ")
    line.append_text(state_text(state))
    if elapsed_s is not None:
        line.append(f"  elapsed {duration(elapsed_s)}", style="dim")
    return line
