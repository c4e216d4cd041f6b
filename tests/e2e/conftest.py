"""A running stack per test module, plus small HTTP helpers for the v1 API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from caesar_testkit.devstack import Stack
from tests.conftest import isolated_stack

TERMINAL = {"SUCCESS", "FAILURE", "TIMED-OUT", "CANCELED", "ABORTED"}


def make_stack(tmp: Path, **extra_env: str) -> Iterator[Stack]:
    with isolated_stack(tmp, prefix_letter="e", **extra_env) as stack:
        yield stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Runner with 2 slots; fast liveness settings so the watchdog acts within seconds."""
    yield from make_stack(
        tmp_path_factory.mktemp("stack"),
        CAESAR_SLOTS="2",
        CAESAR_HEARTBEAT_INTERVAL_S="1",
        CAESAR_RUNNER_TIMEOUT_S="6",
        CAESAR_WATCHDOG_INTERVAL_S="1",
        CAESAR_OUTBOX_SWEEP_INTERVAL_S="1",
        CAESAR_RETRY_BACKOFF_S="1",
        CAESAR_ENABLE_TEST_APPS="true",
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield session


async def upload(http: aiohttp.ClientSession, stack: Stack, path: Path) -> str:
    form = aiohttp.FormData()
    form.add_field("file", path.read_bytes(), filename=path.name, content_type="application/fits")
    async with http.post(f"{stack.v1}/upload", data=form) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return str(body["uuid"])


async def submit(http: aiohttp.ClientSession, stack: Stack, payload: dict[str, Any]) -> str:
    async with http.post(f"{stack.v1}/job", json=payload) as resp:
        body = await resp.json()
        assert resp.status == 202, body
        return str(body["job_id"])


async def status(http: aiohttp.ClientSession, stack: Stack, job_id: str) -> dict[str, Any]:
    async with http.get(f"{stack.v1}/job/{job_id}/status") as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def wait_state(
    http: aiohttp.ClientSession,
    stack: Stack,
    job_id: str,
    states: set[str] = TERMINAL,
    timeout_s: float = 240.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = await status(http, stack, job_id)
        if body["state"] in states:
            return body
        await asyncio.sleep(0.3)
    raise AssertionError(f"job {job_id} still {body.get('state')} after {timeout_s} s")


async def timeline(http: aiohttp.ClientSession, stack: Stack, job_id: str) -> list[dict[str, Any]]:
    """The monitor's timeline of a job (every transition with its attempt and runner)."""
    async with http.get(f"http://127.0.0.1:{stack.ports['monitor']}/jobs/{job_id}/timeline") as resp:
        assert resp.status == 200
        body: list[dict[str, Any]] = await resp.json()
        return body
