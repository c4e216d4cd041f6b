"""Entry point of the ``caesar`` command: the typer app with every command registered."""

from __future__ import annotations

from caesar_cli import commands_apps, commands_auth, commands_files, commands_jobs
from caesar_cli.app import app

__all__ = ["app", "commands_apps", "commands_auth", "commands_files", "commands_jobs", "main"]


def main() -> None:
    app()
