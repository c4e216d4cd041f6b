"""``apps``, ``describe`` and ``usage``: what the server offers and what the user spent."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from caesar_cli.api import V2, Api
from caesar_cli.app import JsonFlag, command, session_of
from caesar_cli.codes import ExitCode
from caesar_cli.errors import CliError
from caesar_cli.render import apps_table, schema_table, usage_table


def list_apps(api: Api) -> list[dict[str, Any]]:
    apps: list[dict[str, Any]] = api.get_json(f"{V2}/apps").get("apps", [])
    return apps


def find_app(api: Api, name: str) -> dict[str, Any]:
    """One app of the catalogue (from the list, which every server version has); exit 4 if unknown."""
    apps = list_apps(api)
    for app in apps:
        if app.get("name") == name:
            return app
    known = ", ".join(str(a.get("name")) for a in apps)
    raise CliError(f"No app named {name!r}; the server has: {known}", ExitCode.NOT_FOUND)


@command(help="List the apps (source finders) of the server.")
def apps(ctx: typer.Context, json_: JsonFlag = False) -> None:
    session = session_of(ctx)
    found = list_apps(session.api)
    if json_:
        session.emit_json(found)
    else:
        session.out.print(apps_table(found))


@command(help="Show an app's options: type, default, allowed values (its JSON Schema as a table).")
def describe(
    ctx: typer.Context, app: Annotated[str, typer.Argument(help="App name.")], json_: JsonFlag = False
) -> None:
    session = session_of(ctx)
    found = find_app(session.api, app)
    if json_:
        session.emit_json(found)
        return
    session.out.print(schema_table(found))
    if found.get("description"):
        session.out.print(str(found["description"]))


@command(help="Your usage (jobs, CPU time, storage) over a date range.")
def usage(
    ctx: typer.Context,
    from_: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD.")] = None,
    group_by: Annotated[str, typer.Option("--group-by", help="user, app or day.")] = "app",
    user: Annotated[str | None, typer.Option("--user", help="Another user's (administrators).")] = None,
    json_: JsonFlag = False,
) -> None:
    session = session_of(ctx)
    params = {"group_by": group_by, "from": from_, "to": to, "user": user}
    report = session.api.get_json(f"{V2}/accounting/usage", {k: v for k, v in params.items() if v})
    if json_:
        session.emit_json(report)
    else:
        session.out.print(usage_table(report))
