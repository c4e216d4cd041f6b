"""Byte progress bars (size, speed, time left) on stderr, so stdout stays for results."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def byte_progress(console: Console, *, disable: bool = False) -> Progress:
    """A progress display for a transfer: bar, ``12.0/64.0 MB``, ``30.1 MB/s``, ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
        transient=False,
    )
