"""Jobs: ``submit``, ``wait``, ``status``, ``jobs``, ``cancel``, ``delete``, ``results``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live

from caesar_cli.api import V2, Api, content_length, filename_of, save_body, segment
from caesar_cli.app import JsonFlag, command, session_of
from caesar_cli.codes import ExitCode
from caesar_cli.commands_apps import find_app
from caesar_cli.errors import CliError
from caesar_cli.follow import FINAL_STATES, follow, http_stream
from caesar_cli.options import OptionsError, build_options
from caesar_cli.progress import byte_progress
from caesar_cli.render import human_bytes, job_table, jobs_table, parse_time, status_line
from caesar_cli.timespec import since_param


def job_path(job_id: str, tail: str = "") -> str:
    return f"{V2}/jobs/{segment(job_id)}{tail}"


@command(help="Submit a job: APP on FILE_ID; options are checked against the app's schema first.")
def submit(
    ctx: typer.Context,
    app: Annotated[str, typer.Argument(help="App name (`caesar apps`).")],
    file_id: Annotated[str, typer.Argument(help="An uploaded file's id (`caesar upload`).")],
    option: Annotated[
        list[str] | None, typer.Option("-o", "--option", help="An app option, key=value (repeatable).")
    ] = None,
    options_json: Annotated[
        str | None, typer.Option("--options-json", help="Options as a JSON object (-o overrides it).")
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="A label for the job.")] = None,
    json_: JsonFlag = False,
) -> None:
    session = session_of(ctx)
    schema = find_app(session.api, app).get("schema") or {}
    try:
        options = build_options(schema, option or [], options_json)
    except OptionsError as exc:
        lines = "\n".join(f"  {e}" for e in exc.errors)
        raise CliError(f"Invalid options for {app}:\n{lines}", ExitCode.USAGE) from None
    body: dict[str, Any] = {"app": app, "file_id": file_id, "options": options}
    if tag:
        body["tag"] = tag
    job = session.api.post_json(f"{V2}/jobs", body)
    if json_:
        session.emit_json(job)
    else:
        typer.echo(job.get("job_id", ""))
        typer.echo(f"Submitted {app} job ({job.get('state', '')}).", err=True)


class LiveStatus:
    """The ``wait`` line, recomputed at every refresh so the elapsed time ticks between events."""

    def __init__(self, job_id: str, state: str, since: datetime | None) -> None:
        self.job_id = job_id
        self.state = state
        self.since = since or datetime.now(UTC)

    def elapsed(self) -> float:
        return (datetime.now(UTC) - self.since).total_seconds()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield status_line(self.job_id, self.state, self.elapsed())


@command(help="Follow a job until it ends (live status line); exit 0 on SUCCESS, 1 if it ended otherwise.")
def wait(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    json_: JsonFlag = False,
) -> None:
    session = session_of(ctx)
    api = session.api
    job = api.get_json(job_path(job_id))
    state = str(job.get("state", ""))
    if state not in FINAL_STATES:
        status = LiveStatus(job_id, state, parse_time(job.get("submitted_at")))

        def on_state(new: str) -> None:
            status.state = new

        stream = http_stream(api.http, api.url(job_path(job_id, "/events")), api.headers)
        with Live(status, console=session.err, refresh_per_second=4, transient=False):
            streamed = follow(stream, on_state, time.sleep)
        job = settled_job(api, job_id, streamed)
    final = str(job.get("state", ""))
    ok = final == "SUCCESS"
    if json_:
        session.emit_json(job)
    else:
        reason = f": {job['reason']}" if job.get("reason") and not ok else ""
        typer.echo(f"Job {job_id} ended {final}{reason}", err=True)
    if not ok:
        raise typer.Exit(int(ExitCode.JOB_FAILED))


SETTLE_S = 10.0
"""How long ``wait`` lets the job record catch up with the final event it has seen."""


def settled_job(
    api: Api, job_id: str, streamed: str | None, clock: Callable[[], float] = time.monotonic
) -> dict[str, Any]:
    """The job once its record shows the end the event stream announced.

    Events are pushed as they happen; the record the api reads can be a moment behind. The
    stream's final state is authoritative: if the record has not caught up within
    :data:`SETTLE_S`, it is shown with that state.
    """
    deadline = clock() + SETTLE_S
    delay = 0.1
    while True:
        job: dict[str, Any] = api.get_json(job_path(job_id))
        if streamed is None or job.get("state") in FINAL_STATES:
            return job
        if clock() >= deadline:
            return {**job, "state": streamed}
        time.sleep(delay)
        delay = min(1.0, delay * 2)


@command(help="Show a job: state, attempt, pool, queue position or hold reason, timings.")
def status(ctx: typer.Context, job_id: Annotated[str, typer.Argument()], json_: JsonFlag = False) -> None:
    session = session_of(ctx)
    job = session.api.get_json(job_path(job_id))
    if json_:
        session.emit_json(job)
    else:
        session.out.print(job_table(job))


@command(help="List your jobs, newest first (follows the server's pages).")
def jobs(
    ctx: typer.Context,
    state: Annotated[
        list[str] | None, typer.Option("--state", help="Only these states (repeatable or comma separated).")
    ] = None,
    app: Annotated[str | None, typer.Option("--app", help="Only this app's jobs.")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Submitted at or after: an ISO time, a date, or an age like 30m, 6h, 2d."
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many (0: all).")] = 50,
    json_: JsonFlag = False,
) -> None:
    session = session_of(ctx)
    params: dict[str, Any] = {"limit": min(limit, 100) if limit else 100}
    if state:
        params["state"] = ",".join(s.strip().upper() for part in state for s in part.split(",") if s.strip())
    if app:
        params["app"] = app
    if since:
        try:
            params["since"] = since_param(since, datetime.now(UTC))
        except ValueError as exc:
            raise CliError(str(exc), ExitCode.USAGE) from None
    found = list(session.api.items(f"{V2}/jobs", params, limit or None))
    if json_:
        session.emit_json(found)
    else:
        session.out.print(jobs_table(found))


@command(help="Ask the server to cancel a job (exit 2 if it has already ended).")
def cancel(ctx: typer.Context, job_id: Annotated[str, typer.Argument()], json_: JsonFlag = False) -> None:
    session = session_of(ctx)
    job = session.api.post_json(job_path(job_id, "/cancel"), None)
    if json_:
        session.emit_json(job)
    else:
        typer.echo(f"Cancel requested for job {job_id} (state {job.get('state', '?')}).", err=True)


@command(help="Delete an ended job's outputs (the record is kept as DELETED).")
def delete(ctx: typer.Context, job_id: Annotated[str, typer.Argument()]) -> None:
    session = session_of(ctx)
    session.api.request("DELETE", job_path(job_id))
    typer.echo(f"Deleted job {job_id}'s outputs.", err=True)


class CatalogFormat(StrEnum):
    votable = "votable"
    fits = "fits"
    csv = "csv"
    json = "json"
    ds9 = "ds9"


class CatalogKind(StrEnum):
    sources = "sources"
    components = "components"


EXTENSIONS = {"votable": "vot", "fits": "fits", "csv": "csv", "json": "json", "ds9": "reg"}


@command(help="Download a job's results: the catalogue (default), its --preview or the whole --archive.")
def results(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument()],
    format_: Annotated[CatalogFormat, typer.Option("--format", "-f", help="Catalogue format.")] = (
        CatalogFormat.votable
    ),
    kind: Annotated[CatalogKind, typer.Option("--kind", help="Catalogue of sources or components.")] = (
        CatalogKind.sources
    ),
    preview: Annotated[bool, typer.Option("--preview", help="The preview image (PNG).")] = False,
    archive: Annotated[bool, typer.Option("--archive", help="The whole job directory (.tar.gz).")] = False,
    output: Annotated[
        str | None,
        typer.Option("-O", "--output", help="Where to write: a file, a directory, or - for stdout."),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    session = session_of(ctx)
    if preview and archive:
        raise CliError("Choose one of --preview and --archive.", ExitCode.USAGE)
    if archive:
        what, path, params, fallback = "archive", job_path(job_id, "/archive"), None, f"{job_id}.tar.gz"
    elif preview:
        what, path, params, fallback = (
            "preview",
            job_path(job_id, "/preview.png"),
            None,
            f"{job_id}-preview.png",
        )
    else:
        what, path = "catalog", job_path(job_id, "/catalog")
        params = {"format": format_.value, "kind": kind.value}
        fallback = f"{job_id}-{kind.value}.{EXTENSIONS[format_.value]}"
    saved = download(session.api, session.err, path, params, output, fallback, show_progress=archive)
    if json_:
        session.emit_json({"job_id": job_id, "what": what, **saved})
    elif saved["path"] != "-":
        typer.echo(f"Saved {saved['path']} ({human_bytes(saved['size_bytes'])}).", err=True)


def download(
    api: Api,
    console: Console,
    path: str,
    params: dict[str, str] | None,
    output: str | None,
    fallback: str,
    *,
    show_progress: bool,
) -> dict[str, Any]:
    """Stream one answer to ``output`` (file, directory or ``-``); returns where and how much."""
    with api.stream(path, params) as resp:
        if output == "-":
            total = 0
            for chunk in resp.iter_bytes():
                sys.stdout.buffer.write(chunk)
                total += len(chunk)
            sys.stdout.buffer.flush()
            return {"path": "-", "size_bytes": total}
        name = filename_of(resp, fallback)
        dest = Path(output) if output else Path(name)
        if dest.is_dir():
            dest = dest / name
        with byte_progress(console, disable=not show_progress) as progress:
            task = progress.add_task(f"download {dest.name}", total=content_length(resp))
            total = save_body(resp, dest, lambda n: progress.advance(task, n))
    return {"path": str(dest), "size_bytes": total}
