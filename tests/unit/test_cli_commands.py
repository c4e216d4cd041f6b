"""``caesar`` commands end to end against an in-memory server (httpx's MockTransport).

The fake answers like docs/api-v2.md says; the tests check what the commands send, what
they print (people on stderr/tables, scripts on stdout with --json) and their exit codes.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from typer.testing import CliRunner, Result

from caesar_cli.codes import ExitCode
from caesar_cli.main import app
from caesar_cli.session import Session
from caesar_cli.tokens import load

API = "http://api.test"
KC = "http://kc.test"
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "bkgbox": {"type": "integer", "minimum": 5, "default": 100, "description": "Box size"},
        "nocov": {"type": "boolean", "default": False, "description": "No covariance"},
    },
}
APP = {
    "name": "aegean",
    "version": "2.3",
    "description": "Aegean. More.",
    "executors": ["local"],
    "available": True,
}


def problem(status: int, detail: str) -> httpx.Response:
    body = {"type": "about:blank", "title": "x", "status": status, "detail": detail}
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


def sse(*events: tuple[str, str]) -> httpx.Response:
    body = "".join(f"id: {i}\nevent: state\ndata: {s}\n\n" for i, s in events)
    return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=body.encode())


class FakeServer:
    """The v2 routes the commands use, with just enough state to follow a job."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.jobs: dict[str, dict[str, Any]] = {
            "j1": {
                "job_id": "j1",
                "app": "aegean",
                "state": "QUEUED",
                "submitted_at": "2026-11-30T10:00:00+00:00",
            },
            "j2": {"job_id": "j2", "app": "aegean", "state": "FAILURE", "reason": "exit code 1"},
        }
        self.uploaded = b""
        self.token = "access-2"
        self.require_token = False
        self.pushed_final: str | None = None
        self.lagging_reads = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = request.url
        if url.host == "kc.test":
            return self.keycloak(request)
        if self.require_token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return problem(401, "Missing or invalid bearer token")
        path, method = url.path, request.method
        if path == "/api/v2/apps":
            return httpx.Response(200, json={"apps": [{**APP, "schema": SCHEMA}]})
        if path == "/api/v2/files" and method == "POST":
            request.read()
            self.uploaded = request.content
            return httpx.Response(201, json={"file_id": "f1", "size_bytes": len(request.content)})
        if path == "/api/v2/jobs" and method == "POST":
            body = json.loads(request.content)
            job = {"job_id": "j9", "state": "PENDING", **body}
            return httpx.Response(201, json=job)
        if path == "/api/v2/jobs" and method == "GET":
            return self.job_pages(request)
        if path.startswith("/api/v2/jobs/"):
            return self.job_route(request, path.removeprefix("/api/v2/jobs/"))
        return problem(404, f"no route {path}")

    def keycloak(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if request.url.path.endswith("/logout"):
            return httpx.Response(204)
        if form.get("password") == "right" or form.get("grant_type") == "refresh_token":
            return httpx.Response(
                200,
                json={
                    "access_token": f"h.{_b64({'preferred_username': 'alice'})}.s",
                    "expires_in": 300,
                    "refresh_token": "r",
                    "refresh_expires_in": 1800,
                },
            )
        return httpx.Response(
            401, json={"error": "invalid_grant", "error_description": "Invalid user credentials"}
        )

    def job_pages(self, request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("after")
        if after is None:
            items = [{"job_id": f"p{i}", "app": "aegean", "state": "SUCCESS"} for i in range(3)]
            return httpx.Response(
                200, json={"items": items, "next": "/api/v2/jobs?limit=3&after=p2&state=SUCCESS"}
            )
        return httpx.Response(
            200, json={"items": [{"job_id": "p3", "app": "aegean", "state": "SUCCESS"}], "next": None}
        )

    def job_route(self, request: httpx.Request, rest: str) -> httpx.Response:
        job_id, _, tail = rest.partition("/")
        job = self.jobs.get(job_id)
        if job is None:
            return problem(404, f"Job {job_id} not found")
        if tail == "":
            if self.lagging_reads:  # the record catches up with the pushed event a little later
                self.lagging_reads -= 1
            elif self.pushed_final:
                job["state"] = self.pushed_final
            return httpx.Response(200, json=job)
        if tail == "events":
            if request.headers.get("Last-Event-ID") is None:
                return sse(("1", "QUEUED"), ("2", "RUNNING"))  # then the connection ends early
            job["state"] = "RUNNING"
            self.pushed_final, self.lagging_reads = "SUCCESS", 2
            return sse(("3", "SUCCESS"))
        if tail == "cancel":
            if job["state"] in ("SUCCESS", "FAILURE"):
                return problem(
                    409, f"Job {job_id} has already ended (state={job['state']}); nothing to cancel"
                )
            return httpx.Response(202, json={**job, "state": job["state"]})
        if tail == "catalog":
            fmt = request.url.params["format"]
            headers = {"Content-Disposition": f"attachment; filename={job_id}-sources.{fmt}"}
            return httpx.Response(200, content=f"catalog {fmt}".encode(), headers=headers)
        if tail == "archive":
            return httpx.Response(
                200, content=b"\x1f\x8b" + b"a" * 5000, headers={"Content-Type": "application/gzip"}
            )
        return problem(404, "no such result")


def _b64(claims: dict[str, Any]) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "config")}


@pytest.fixture
def run(server: FakeServer, env: dict[str, str]) -> Any:
    def invoke(*args: str, extra_env: dict[str, str] | None = None) -> Result:
        session = Session(url=API, env={**env, **(extra_env or {})})
        session.client = httpx.Client(transport=httpx.MockTransport(server))
        return CliRunner().invoke(app, ["--url", API, *args], obj=session, env=extra_env)

    return invoke


def test_apps_json_is_plain_json_and_table_names_the_app(run: Any) -> None:
    result = run("apps", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["name"] == "aegean"
    table = run("apps")
    assert "aegean" in table.stdout
    assert "2.3" in table.stdout


def test_describe_shows_the_options_and_unknown_app_is_not_found(run: Any) -> None:
    result = run("describe", "aegean")
    assert result.exit_code == 0
    assert "bkgbox" in result.stdout
    assert "integer" in result.stdout
    assert "Box size" in result.stdout
    missing = run("describe", "nope")
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert "No app named 'nope'" in missing.stderr
    assert missing.stdout == ""


def test_submit_checks_options_before_sending(run: Any, server: FakeServer) -> None:
    result = run("submit", "aegean", "f1", "-o", "bkgbox=2", "-o", "nocov=perhaps", "-o", "typo=1")
    assert result.exit_code == ExitCode.USAGE
    for field in (
        "bkgbox: 2 is less than the minimum of 5",
        "nocov: expected true/false",
        "typo: unknown option",
    ):
        assert field in result.stderr
    assert not [r for r in server.requests if r.method == "POST"]


def test_submit_sends_typed_options(run: Any, server: FakeServer) -> None:
    result = run(
        "submit", "aegean", "f1", "-o", "bkgbox=50", "--options-json", '{"nocov": true}', "--tag", "t"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "j9"
    posted = json.loads(next(r for r in server.requests if r.method == "POST").content)
    assert posted == {"app": "aegean", "file_id": "f1", "options": {"nocov": True, "bkgbox": 50}, "tag": "t"}
    as_json = run("submit", "aegean", "f1", "--json")
    assert json.loads(as_json.stdout)["job_id"] == "j9"


def test_wait_reconnects_with_last_event_id_and_exits_0_on_success(run: Any, server: FakeServer) -> None:
    result = run("wait", "j1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == "SUCCESS"
    streams = [r for r in server.requests if r.url.path.endswith("/events")]
    assert [r.headers.get("Last-Event-ID") for r in streams] == [None, "2"]
    reads_after = [r for r in server.requests if r.url.path == "/api/v2/jobs/j1"][1:]
    assert len(reads_after) == 3  # two reads behind the event, then the settled record


def test_wait_on_a_failed_job_exits_1_with_the_reason(run: Any) -> None:
    result = run("wait", "j2")
    assert result.exit_code == ExitCode.JOB_FAILED
    assert "FAILURE: exit code 1" in result.stderr


def test_not_found_shows_the_servers_detail(run: Any) -> None:
    result = run("status", "nope")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "Job nope not found" in result.stderr
    assert result.stdout == ""


def test_status_table_and_json(run: Any) -> None:
    result = run("status", "j2")
    assert result.exit_code == 0
    assert "FAILURE" in result.stdout
    assert "exit code 1" in result.stdout
    assert json.loads(run("status", "j2", "--json").stdout)["reason"] == "exit code 1"


def test_jobs_follows_pages_and_stops_at_the_limit(run: Any, server: FakeServer) -> None:
    result = run("jobs", "--json", "--state", "success", "--state", "failure,held", "--app", "aegean")
    assert result.exit_code == 0, result.output
    assert [j["job_id"] for j in json.loads(result.stdout)] == ["p0", "p1", "p2", "p3"]
    first = next(r for r in server.requests if r.url.path == "/api/v2/jobs")
    assert first.url.params["state"] == "SUCCESS,FAILURE,HELD"
    assert first.url.params["app"] == "aegean"
    server.requests.clear()
    limited = run("jobs", "--json", "--limit", "2")
    assert len(json.loads(limited.stdout)) == 2
    assert len(server.requests) == 1
    bad = run("jobs", "--since", "yesterday")
    assert bad.exit_code == ExitCode.USAGE


def test_cancel_of_an_ended_job_is_a_refused_request(run: Any) -> None:
    result = run("cancel", "j2")
    assert result.exit_code == ExitCode.USAGE
    assert "already ended" in result.stderr
    assert run("cancel", "j1").exit_code == 0


def test_results_are_saved_under_the_servers_name_or_sent_to_stdout(
    run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("results", "j1", "--format", "csv", "--json")
    assert result.exit_code == 0, result.output
    saved = json.loads(result.stdout)
    assert saved == {"job_id": "j1", "what": "catalog", "path": "j1-sources.csv", "size_bytes": 11}
    assert (tmp_path / "j1-sources.csv").read_bytes() == b"catalog csv"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert run("results", "j1", "-O", str(out_dir)).exit_code == 0
    assert (out_dir / "j1-sources.votable").read_bytes() == b"catalog votable"
    to_stdout = run("results", "j1", "--format", "ds9", "-O", "-")
    assert to_stdout.stdout == "catalog ds9"
    archive = run("results", "j1", "--archive", "-O", str(tmp_path / "a.tar.gz"))
    assert archive.exit_code == 0
    assert (tmp_path / "a.tar.gz").stat().st_size == 5002
    assert run("results", "j1", "--archive", "--preview").exit_code == ExitCode.USAGE
    assert run("results", "j1", "--format", "xml").exit_code == ExitCode.USAGE
    gone = run("results", "j1", "--preview", "-O", str(tmp_path / "p.png"))
    assert gone.exit_code == ExitCode.NOT_FOUND
    assert not (tmp_path / "p.png").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_upload_streams_the_file(run: Any, server: FakeServer, tmp_path: Path) -> None:
    image = tmp_path / "field.fits"
    image.write_bytes(b"SIMPLE  =" + bytes(range(256)) * 4000)
    result = run("upload", str(image), "--tag", "survey", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["file_id"] == "f1"
    assert image.read_bytes() in server.uploaded
    assert b'name="tag"\r\n\r\nsurvey' in server.uploaded
    assert run("upload", str(tmp_path / "missing.fits")).exit_code == ExitCode.USAGE


def test_login_with_password_caches_the_token_then_commands_send_it(
    run: Any, server: FakeServer, env: dict[str, str]
) -> None:
    server.require_token = True
    denied = run("apps")
    assert denied.exit_code == ExitCode.AUTH
    assert "caesar login" in denied.stderr
    kc = {"CAESAR_KEYCLOAK_URL": KC, "CAESAR_PASSWORD": "wrong"}
    failed = run("login", "--password", "-u", "alice", extra_env=kc)
    assert failed.exit_code == ExitCode.AUTH
    assert "Invalid user credentials" in failed.stderr
    result = run("login", "--password", "-u", "alice", extra_env={**kc, "CAESAR_PASSWORD": "right"})
    assert result.exit_code == 0, result.output
    assert "Logged in as alice" in result.stderr
    cache = Path(env["XDG_CONFIG_HOME"]) / "caesar" / "token.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    tokens = load(cache)
    assert tokens is not None
    server.token = tokens.access_token
    assert run("apps", "--json").exit_code == 0
    assert run("logout").exit_code == 0
    assert not cache.exists()
    assert run("apps").exit_code == ExitCode.AUTH


def test_env_token_is_sent(run: Any, server: FakeServer) -> None:
    server.require_token = True
    server.token = "from-env"
    assert run("apps", extra_env={"CAESAR_TOKEN": "from-env"}).exit_code == 0


def test_unreachable_server_is_exit_5(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", "apps"], obj=Session(url="", env=env))
    assert result.exit_code == ExitCode.SERVER
    assert "Cannot reach the server at http://127.0.0.1:9" in result.stderr


def test_help_documents_the_exit_codes() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Exit codes: 0 ok; 1 the job ended without success" in text


def test_upload_reads_the_file_in_chunks_and_reports_each(server: FakeServer, tmp_path: Path) -> None:
    from caesar_cli.api import Api
    from caesar_cli.auth import TokenSource

    image = tmp_path / "big.fits"
    image.write_bytes(b"x" * (1024 * 1024 + 7))
    http = httpx.Client(transport=httpx.MockTransport(server))
    api = Api(API, http, TokenSource(None, tmp_path / "none.json", http))
    reads: list[int] = []
    assert api.upload(image, None, reads.append)["size_bytes"] > image.stat().st_size
    assert sum(reads) == image.stat().st_size
    assert max(reads) <= 256 * 1024  # never the whole file at once
    assert server.requests[-1].headers["Content-Length"].isdigit()  # length known: not chunked


def test_a_record_that_never_catches_up_is_shown_with_the_streamed_state(tmp_path: Path) -> None:
    from caesar_cli.api import Api
    from caesar_cli.auth import TokenSource
    from caesar_cli.commands_jobs import SETTLE_S, settled_job

    reads: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        reads.append(1)
        return httpx.Response(200, json={"job_id": "j", "state": "RUNNING", "reason": ""})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    api = Api(API, http, TokenSource(None, tmp_path / "none.json", http))
    ticks = iter(range(0, 1000, int(SETTLE_S // 2)))
    job = settled_job(api, "j", "FAILURE", clock=lambda: float(next(ticks)))
    assert job == {"job_id": "j", "state": "FAILURE", "reason": ""}
    assert len(reads) == 2  # clock 0 (deadline 10), read at 5, read at 10: give up
    assert settled_job(api, "j", None)["state"] == "RUNNING"  # nothing streamed: the record as it is
