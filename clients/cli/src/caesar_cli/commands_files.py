"""``upload``, ``files`` and ``rm``: the user's images on the server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caesar_cli.api import V2, segment
from caesar_cli.app import JsonFlag, command, session_of
from caesar_cli.codes import ExitCode
from caesar_cli.errors import CliError
from caesar_cli.progress import byte_progress
from caesar_cli.render import files_table, human_bytes


@command(help="Upload an image (streamed, with a progress bar); prints its file id.")
def upload(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The image (FITS, ...).")],
    tag: Annotated[str | None, typer.Option("--tag", help="A label to find it by.")] = None,
    json_: JsonFlag = False,
) -> None:
    session = session_of(ctx)
    if not file.is_file():
        raise CliError(f"{file}: no such file", ExitCode.USAGE)
    size = file.stat().st_size
    with byte_progress(session.err) as progress:
        task = progress.add_task(f"upload {file.name}", total=size)
        body = session.api.upload(file, tag, lambda n: progress.advance(task, n))
    if json_:
        session.emit_json(body)
    else:
        typer.echo(body.get("file_id", ""))
        typer.echo(f"Uploaded {file.name} ({human_bytes(body.get('size_bytes', size))}).", err=True)


@command(help="List your uploaded files.")
def files(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many (0: all).")] = 50,
    json_: JsonFlag = False,
) -> None:
    session = session_of(ctx)
    page = min(limit, 100) if limit else 100
    found = list(session.api.items(f"{V2}/files", {"limit": page}, limit or None))
    if json_:
        session.emit_json(found)
    else:
        session.out.print(files_table(found))


@command(help="Delete an uploaded file.")
def rm(ctx: typer.Context, file_id: Annotated[str, typer.Argument(help="The file id.")]) -> None:
    session = session_of(ctx)
    session.api.request("DELETE", f"{V2}/files/{segment(file_id)}")
    typer.echo(f"Deleted file {file_id}.", err=True)
