"""The one error type the commands raise, and how a server's answer becomes one.

Commands never print errors themselves: they raise :class:`CliError`, and ``main`` prints
it on stderr and exits with its code, so every failure looks the same and ``--json``
output on stdout is never mixed with error text.
"""

from __future__ import annotations

import json
from typing import Any

from caesar_cli.codes import ExitCode, exit_code_for_status


class CliError(Exception):
    """A failure to report to the user, with the exit code it maps to."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def problem_message(status: int, body: bytes, reason: str = "") -> str:
    """A one-paragraph message from an error answer (RFC 9457 problem+json or v1 JSON).

    Per-field validation errors (``errors: [{path, message}]``) are listed one per line,
    because that is the part a user has to act on.
    """
    data: Any = None
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    head = f"HTTP {status}" + (f" {reason}" if reason else "")
    if not isinstance(data, dict):
        text = body.decode("utf-8", "replace").strip()[:500]
        return f"{head}: {text}" if text else head
    detail = data.get("detail") or data.get("status") or data.get("title") or ""
    lines = [f"{head}: {detail}" if detail else head]
    errors = data.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict):
                where = item.get("path") or "(body)"
                lines.append(f"  {where}: {item.get('message', '')}")
    return "\n".join(lines)


def http_error(status: int, body: bytes, reason: str = "") -> CliError:
    """The :class:`CliError` of an HTTP error answer, with the status's exit code."""
    message = problem_message(status, body, reason)
    if status == 401:
        message += "\n(run `caesar login`, or set CAESAR_TOKEN)"
    return CliError(message, exit_code_for_status(status))
