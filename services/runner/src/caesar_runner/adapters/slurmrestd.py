"""A small client for slurmrestd, the Slurm REST API.

Slurm changes its REST schema between releases (v0.0.36 ... v0.0.38 in 22.05, v0.0.39+
later, with renamed fields and paths), so everything version-specific sits here: the
paths, the submit body and the parsing of job records. The executor speaks only in
:class:`SubmitRequest` and :class:`SlurmJob`. Supporting another version means another
:class:`ApiVersion`, not touching the executor.

Authentication is JWT: every request carries ``X-SLURM-USER-NAME`` and
``X-SLURM-USER-TOKEN``. The token comes from the operator (a setting, or a file a cron job
refreshes with ``scontrol token``); the runner never holds the cluster's signing key.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

__all__ = [
    "ApiVersion",
    "SlurmAuthError",
    "SlurmJob",
    "SlurmRestClient",
    "SlurmRestError",
    "SlurmUnavailable",
    "SubmitRequest",
    "TokenSource",
    "api_version",
    "decode_exit_code",
]


class SlurmRestError(RuntimeError):
    """slurmrestd answered, but with an error (the message carries Slurm's own errors)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class SlurmAuthError(SlurmRestError):
    """slurmrestd or slurmctld refused our credentials: a configuration problem, not load."""


class SlurmUnavailable(SlurmRestError):
    """slurmrestd could not be reached (down, restarting, network): retry later."""


@dataclass(frozen=True)
class SubmitRequest:
    """One batch job, in the executor's terms (minutes for the limit, MB for memory)."""

    script: str
    name: str
    comment: str
    working_dir: str
    stdout: str
    stderr: str
    time_limit_min: int
    cpus_per_task: int
    memory_mb: int
    environment: Mapping[str, str]
    partition: str = ""
    account: str = ""


@dataclass(frozen=True)
class SlurmJob:
    """What the executor needs to know about one Slurm job."""

    job_id: int
    name: str
    comment: str
    state: str
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    start_time: int = 0
    end_time: int = 0


def decode_exit_code(raw: Any) -> tuple[int | None, int | None]:
    """Split a v0.0.38 ``exit_code`` (a raw wait status: code << 8 | signal) in two."""
    if not isinstance(raw, int) or isinstance(raw, bool):
        return None, None
    signal = raw & 0x7F
    return (raw >> 8) & 0xFF, (signal or None)


@dataclass(frozen=True)
class ApiVersion:
    """Paths and body shapes of one slurmrestd OpenAPI plugin version."""

    name: str

    def path(self, what: str, job_id: int | None = None) -> str:
        base = f"/slurm/{self.name}"
        if what == "submit":
            return f"{base}/job/submit"
        if what == "jobs":
            return f"{base}/jobs"
        if what == "job":
            return f"{base}/job/{int(job_id or 0)}"
        if what == "ping":
            return f"{base}/ping"
        raise ValueError(what)

    def submit_body(self, req: SubmitRequest) -> dict[str, Any]:
        job: dict[str, Any] = {
            "name": req.name,
            "comment": req.comment,
            "current_working_directory": req.working_dir,
            "standard_output": req.stdout,
            "standard_error": req.stderr,
            "time_limit": req.time_limit_min,
            "cpus_per_task": req.cpus_per_task,
            "memory_per_node": req.memory_mb,
            "environment": dict(req.environment),
            "requeue": False,
        }
        if req.partition:
            job["partition"] = req.partition
        if req.account:
            job["account"] = req.account
        return {"script": req.script, "job": job}

    def parse_job(self, raw: Mapping[str, Any]) -> SlurmJob:
        code, signal = decode_exit_code(raw.get("exit_code"))
        return SlurmJob(
            job_id=int(raw["job_id"]),
            name=str(raw.get("name") or ""),
            comment=str(raw.get("comment") or ""),
            state=str(raw.get("job_state") or "UNKNOWN").upper(),
            exit_code=code,
            signal=signal,
            reason=str(raw.get("state_reason") or ""),
            start_time=int(raw.get("start_time") or 0),
            end_time=int(raw.get("end_time") or 0),
        )


# 22.05 ships v0.0.36 to v0.0.38 with the same shapes for what we use.
_SUPPORTED = {"v0.0.36", "v0.0.37", "v0.0.38"}


def api_version(name: str) -> ApiVersion:
    """The adapter for ``name``; an unsupported version fails at start, not at submit."""
    if name not in _SUPPORTED:
        raise ValueError(f"slurmrestd API version {name} is not supported (supported: {sorted(_SUPPORTED)})")
    return ApiVersion(name)


@dataclass
class TokenSource:
    """The JWT for slurmrestd: a fixed token, or a file re-read when it changes.

    A file lets an operator (or ``scripts/slurm.sh token``) rotate short-lived tokens
    without restarting the runner.
    """

    token: str = ""
    token_file: Path | None = None
    _cached: tuple[float, str] = field(default=(0.0, ""), repr=False)

    def forget(self) -> None:
        """Read the file again next time (after a refusal, even if its mtime looks unchanged)."""
        self._cached = (0.0, "")

    def get(self) -> str:
        if self.token_file is None:
            return self.token
        try:
            mtime = self.token_file.stat().st_mtime
        except OSError as exc:
            raise SlurmAuthError(f"Slurm token file {self.token_file} is unreadable: {exc}") from exc
        if mtime != self._cached[0]:
            value = self.token_file.read_text(encoding="utf-8").strip()
            if value.startswith("SLURM_JWT="):  # raw `scontrol token` output
                value = value.removeprefix("SLURM_JWT=")
            self._cached = (mtime, value)
        return self._cached[1]


# Error numbers slurmctld returns when it rejected the request's credentials, and the
# transport errors slurmrestd reports when slurmctld hung up on a bad token.
_AUTH_ERRNOS = {-1, 1007, 1008, 5005}


class SlurmRestClient:
    """The four calls the executor needs: submit, list, get, cancel (and ping)."""

    def __init__(
        self,
        base_url: str,
        version: ApiVersion,
        user: str,
        tokens: TokenSource,
        *,
        timeout_s: float = 15.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        self.version = version
        self._user = user
        self._tokens = tokens
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        token = self._tokens.get()
        if not token:
            raise SlurmAuthError("no Slurm token configured (CAESAR_SLURM_TOKEN or CAESAR_SLURM_TOKEN_FILE)")
        return {
            "X-SLURM-USER-NAME": self._user,
            "X-SLURM-USER-TOKEN": token,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def forget_token(self) -> None:
        """The token was refused: read it again on the next request."""
        self._tokens.forget()

    async def _call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        data = None if body is None else json.dumps(body)
        try:
            async with self._session.request(
                method, self._base + path, data=data, headers=self._headers()
            ) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SlurmUnavailable(f"slurmrestd at {self._base} is unreachable: {exc!r}") from exc
        try:
            payload = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            payload = {"errors": [{"error": text.strip()[:200]}]}
        if not isinstance(payload, dict):
            payload = {}
        return status, payload

    @staticmethod
    def _errors(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        errors = payload.get("errors") or []
        return [e for e in errors if isinstance(e, Mapping)]

    @staticmethod
    def _describe(status: int, errors: Sequence[Mapping[str, Any]]) -> str:
        parts = [str(e.get("description") or e.get("error") or e) for e in errors]
        return f"HTTP {status}: " + ("; ".join(parts) or "no error detail")

    async def _check(self, what: str, status: int, payload: Mapping[str, Any]) -> None:
        """Raise for an error answer; tell a refused token apart from other errors.

        Through ``SLURM_JWT=daemon`` a bad token is not a 401: slurmctld drops the
        connection and slurmrestd answers 500 with a vague error. So on such an answer we
        ping: a ping needs nothing but valid credentials, and if it fails as well, the
        token is what is wrong.
        """
        errors = self._errors(payload)
        if status == 401 or status == 403:
            raise SlurmAuthError(
                f"slurmrestd refused the credentials of user {self._user} ({what}, HTTP {status})", status
            )
        if status < 400 and not errors:
            return
        detail = self._describe(status, errors)
        numbers = {e.get("error_number", e.get("error_code")) for e in errors}
        if status >= 500 and numbers & _AUTH_ERRNOS and what != "ping" and not await self._ping_ok():
            raise SlurmAuthError(
                f"Slurm refused the JWT of user {self._user} ({what}: {detail}); the token is invalid, "
                "expired or not signed with the cluster's key",
                status,
            )
        raise SlurmRestError(f"slurmrestd {what} failed: {detail}", status)

    async def _ping_ok(self) -> bool:
        try:
            status, payload = await self._call("GET", self.version.path("ping"))
        except SlurmUnavailable:
            return True  # unreachable is not an auth problem
        return status < 400 and not self._errors(payload)

    async def ping(self) -> None:
        status, payload = await self._call("GET", self.version.path("ping"))
        if status >= 400 or self._errors(payload):
            detail = self._describe(status, self._errors(payload))
            raise SlurmAuthError(f"slurmrestd ping failed for user {self._user}: {detail}", status)

    async def submit(self, req: SubmitRequest) -> int:
        status, payload = await self._call("POST", self.version.path("submit"), self.version.submit_body(req))
        await self._check("submit", status, payload)
        job_id = payload.get("job_id")
        if not isinstance(job_id, int):
            raise SlurmRestError(f"slurmrestd submit answered without a job id: {payload!r:.300}", status)
        return job_id

    async def jobs(self) -> list[SlurmJob]:
        """Every job slurmctld still knows (running, pending and recently finished)."""
        status, payload = await self._call("GET", self.version.path("jobs"))
        await self._check("jobs", status, payload)
        return [self.version.parse_job(j) for j in payload.get("jobs") or [] if isinstance(j, Mapping)]

    async def job(self, job_id: int) -> SlurmJob | None:
        """One job, or None once slurmctld has forgotten it."""
        status, payload = await self._call("GET", self.version.path("job", job_id))
        jobs = [j for j in payload.get("jobs") or [] if isinstance(j, Mapping)]
        if not jobs and status >= 400 and any(e.get("error_number") == 2017 for e in self._errors(payload)):
            return None  # ESLURM_INVALID_JOB_ID
        await self._check("job", status, payload)
        return self.version.parse_job(jobs[0]) if jobs else None

    async def cancel(self, job_id: int) -> None:
        """DELETE the job (SIGTERM, then SIGKILL after KillWait); a finished job is fine."""
        status, payload = await self._call("DELETE", self.version.path("job", job_id))
        errors = self._errors(payload)
        # 2017: invalid (forgotten) job id; 2021: job already completed.
        if status >= 400 and errors and all(e.get("error_number") in (2017, 2021) for e in errors):
            return
        await self._check("cancel", status, payload)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            # Let the connector close its sockets before the loop goes away.
            await asyncio.sleep(0)
