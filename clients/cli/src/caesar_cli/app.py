"""The typer application, its root options, and the one place errors become exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from caesar_cli import __version__
from caesar_cli.codes import EXIT_CODES_HELP, ExitCode
from caesar_cli.errors import CliError
from caesar_cli.session import DEFAULT_URL, Session

P = ParamSpec("P")
R = TypeVar("R")

HELP = f"""caesar: upload radio images, run source finders on them, follow the jobs and fetch the results
from a caesar-rest server.

The server is --url or CAESAR_URL (default {DEFAULT_URL}). With authentication on, `caesar login`
first (or set CAESAR_TOKEN). Reading commands take --json for scripts: plain JSON on stdout.

{EXIT_CODES_HELP}
"""

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print plain JSON on stdout (for scripts).")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"caesar {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option("--url", envvar="CAESAR_URL", help="Base URL of the caesar-rest api.")
    ] = DEFAULT_URL,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    session = ctx.obj if isinstance(ctx.obj, Session) else Session(url=url)  # tests pass their own
    session.url = url
    ctx.obj = session
    ctx.call_on_close(session.close)


def session_of(ctx: typer.Context) -> Session:
    obj = ctx.find_object(Session)
    if obj is None:  # pragma: no cover (root always sets it)
        raise CliError("internal error: no session", ExitCode.USAGE)
    return obj


def command(*args: Any, **kwargs: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``app.command`` whose :class:`CliError` is printed on stderr and becomes the exit code."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapped(*a: P.args, **kw: P.kwargs) -> R:
            try:
                return fn(*a, **kw)
            except CliError as exc:
                typer.echo(f"Error: {exc.message}", err=True)
                raise typer.Exit(int(exc.code)) from None
            except KeyboardInterrupt:
                typer.echo("Interrupted.", err=True)
                raise typer.Exit(130) from None

        app.command(*args, **kwargs)(wrapped)
        return wrapped

    return decorate
