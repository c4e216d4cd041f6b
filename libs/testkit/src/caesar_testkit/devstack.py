"""The whole stack as local processes (end-to-end tests, benchmarks).

Each service runs as ``python -m caesar_<name>`` with its own HTTP port, all sharing a
throw-away RabbitMQ vhost, a database prefix and data/job directories, exactly as
``scripts/services.sh`` starts them for users.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("api", "scheduler", "runner", "monitor", "accounting")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    root: Path
    amqp_url: str
    mongo_url: str
    db_prefix: str
    extra_env: Mapping[str, str] = field(default_factory=dict)
    service_urls: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Per service, its own broker and database URLs (least privilege, as deployed);
    services without an entry use ``amqp_url`` and ``mongo_url``."""
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Every service's port up front: the api must know accounting's before either starts."""
        for name in SERVICES:
            self.assign_port(name)

    def assign_port(self, key: str) -> int:
        """A free port for ``key`` (kept if it has one), never one another service holds."""
        if key not in self.ports:
            taken = set(self.ports.values())
            port = free_port()
            while port in taken:
                port = free_port()
            self.ports[key] = port
        return self.ports[key]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def v1(self) -> str:
        return f"{self.api}/caesar/api/v1.0"

    def env_for(
        self, name: str, overrides: Mapping[str, str] | None = None, *, service: str | None = None
    ) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAESAR_")}
        amqp_url, mongo_url = self.service_urls.get(service or name, (self.amqp_url, self.mongo_url))
        env.update(
            CAESAR_AMQP_URL=amqp_url,
            CAESAR_MONGO_URL=mongo_url,
            CAESAR_MONGO_DB_PREFIX=self.db_prefix,
            CAESAR_DATA_ROOT=str(self.root / "data"),
            CAESAR_JOBS_ROOT=str(self.root / "jobs"),
            CAESAR_HTTP_HOST="127.0.0.1",
            CAESAR_HTTP_PORT=str(self.ports[name]),
            CAESAR_LOG_LEVEL="INFO",
        )
        if (service or name) == "api":
            env["CAESAR_ACCOUNTING_URL"] = f"http://127.0.0.1:{self.ports['accounting']}"
        env.update(self.extra_env)
        env.update(overrides or {})
        return env

    def start(self, name: str, *, instance: str | None = None, **overrides: str) -> None:
        """Start one service (``instance`` names a second copy, e.g. another runner)."""
        key = instance or name
        self.assign_port(key)
        log = (self.root / "logs" / f"{key}.log").open("ab")
        env = self.env_for(key, overrides, service=name)
        self.procs[key] = subprocess.Popen(
            [sys.executable, "-m", f"caesar_{name}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def start_all(self, **runner_overrides: str) -> None:
        for d in ("data", "jobs", "logs"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            self.start(name, **(runner_overrides if name == "runner" else {}))
        for name in SERVICES:
            self.wait_ready(name)

    def wait_ready(self, key: str, timeout_s: float = 90.0) -> None:
        url = f"http://127.0.0.1:{self.ports[key]}/readyz"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            proc = self.procs[key]
            if proc.poll() is not None:
                raise RuntimeError(f"{key} exited with {proc.returncode}:\n{self.log_tail(key)}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{key} not ready after {timeout_s} s:\n{self.log_tail(key)}")

    def log_tail(self, key: str, lines: int = 40) -> str:
        path = self.root / "logs" / f"{key}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, key: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[key]
        if proc.poll() is None:
            os.killpg(proc.pid, sig) if sig == signal.SIGKILL else proc.send_signal(sig)
            proc.wait(timeout=60)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for key, proc in self.procs.items():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            _ = key
