"""The AsyncAPI document: valid for the official parser, and true to the code it describes.

The parser is @asyncapi/parser from npm, run with node by ``scripts/asyncapi.sh`` (installed
by ``scripts/test.sh``). Without node or the parser the validation test is skipped on a
developer's machine and fails under CI (``CI=true``) or ``scripts/test.sh``, where it was
installed: a validator that silently does not run proves nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft7Validator

from caesar_api.bootstrap import create_runtime
from caesar_api.entrypoints.http import create_app
from caesar_api.entrypoints.routes.docs import asyncapi_body
from caesar_api.settings import ApiSettings
from caesar_common import access, events
from caesar_common.asyncapi import build_asyncapi, channel_for_routing_key, channel_schemas
from caesar_common.events import (
    MESSAGE_TYPES,
    Envelope,
    FileUploaded,
    InputFile,
    JobStateChanged,
    Message,
    OutputFile,
    QuotaChanged,
    RunJob,
)
from caesar_common.jobstate import JobState
from caesar_common.runtime import add_operational_routes
from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "asyncapi.sh"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_asyncapi()


def validator_required() -> bool:
    """CI, or scripts/test.sh (which installed the parser): a missing validator fails."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"} or bool(
        os.environ.get("CAESAR_TEST_RUN_ID")
    )


@pytest.fixture(scope="module")
def parser_ready() -> None:
    missing = None
    if shutil.which("node") is None:
        missing = "node is not installed"
    elif subprocess.run([SCRIPT, "installed"], capture_output=True).returncode != 0:
        missing = "the AsyncAPI parser is not installed (scripts/asyncapi.sh install, needs npm)"
    if missing is not None:
        if validator_required():
            pytest.fail(f"{missing}, although CI / scripts/test.sh must validate the AsyncAPI document")
        pytest.skip(f"{missing}: the document is not validated on this machine")


def parse(path: Path) -> tuple[int, dict[str, Any]]:
    """The parser's exit status and its JSON report on ``path``."""
    done = subprocess.run([SCRIPT, "validate", str(path)], capture_output=True, text=True, timeout=120)
    assert done.stdout, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report


def test_the_official_parser_finds_no_error_or_warning(
    parser_ready: None, document: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(document))
    status, report = parse(path)
    problems = [d for d in report["diagnostics"] if d["severity"] in {"error", "warning"}]
    assert status == 0, problems
    assert report["parsed"], problems
    assert report["errors"] == 0, problems
    assert report["warnings"] == 0, problems


def test_the_parser_reports_a_broken_document(
    parser_ready: None, document: dict[str, Any], tmp_path: Path
) -> None:
    """The check above can fail: a wrong exchange type and a dangling reference are errors."""
    broken = json.loads(json.dumps(document))
    broken["channels"]["fileUploaded"]["bindings"]["amqp"]["exchange"]["type"] = "fanciful"
    broken["operations"]["receiveFileUploaded"]["channel"] = {"$ref": "#/channels/noSuchChannel"}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    status, report = parse(path)
    assert status == 1
    assert report["errors"] >= 2
    paths = [d["path"] for d in report["diagnostics"] if d["severity"] == "error"]
    assert ["channels", "fileUploaded", "bindings", "amqp", "exchange", "type"] in paths


def test_every_event_type_has_a_channel_and_only_the_pool_command_is_left_out(
    document: dict[str, Any],
) -> None:
    messages = {name for channel in document["channels"].values() for name in channel["messages"]}
    assert messages == {kind.__name__ for kind in MESSAGE_TYPES.values()} - {"RunJob"}
    assert [entry["message"] for entry in document["x-internal"]] == ["RunJob"]
    assert (
        RunJob(
            job_id="j1",
            owner="o",
            app="trivial",
            attempt=1,
            params={},
            input=InputFile(file_id="f1", ext="fits"),
            wall_time_s=1,
            pool="local",
        ).routing_key()
        == "runner.local"
    )  # a queue, not a key
    for channel in document["channels"].values():
        assert channel["bindings"]["amqp"]["exchange"] == {
            "name": "caesar.events",
            "type": "topic",
            "durable": True,
            "autoDelete": False,
            "vhost": "/",
        }


@pytest.mark.parametrize("state", list(JobState))
def test_each_job_state_key_is_the_job_state_channel(document: dict[str, Any], state: JobState) -> None:
    key = JobStateChanged(
        job_id="j1", owner="o", app="a", attempt=1, state=state, changed_at=NOW
    ).routing_key()
    assert channel_for_routing_key(document, key) == "jobState"


@pytest.mark.parametrize("kind", [k for k in MESSAGE_TYPES.values() if k not in (JobStateChanged, RunJob)])
def test_each_other_event_key_has_its_own_channel(document: dict[str, Any], kind: type[Message]) -> None:
    key = kind.model_construct().routing_key()
    channel_id = channel_for_routing_key(document, key)
    assert channel_id is not None
    assert document["channels"][channel_id]["address"] == key
    assert list(document["channels"][channel_id]["messages"]) == [kind.__name__]


@pytest.mark.parametrize(
    "key", ["job.state.bogus", "job.state", "job.state.success.x", "runner.local", "filexuploaded"]
)
def test_keys_of_no_channel_match_none(document: dict[str, Any], key: str) -> None:
    assert channel_for_routing_key(document, key) is None


def test_a_message_type_with_an_undeclared_routing_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Rogue(Message):
        type_name: ClassVar[str] = "rogue"

        def routing_key(self) -> str:
            return "rogue.somewhere"

    monkeypatch.setitem(events.MESSAGE_TYPES, Rogue.event_type(), Rogue)
    with pytest.raises(ValueError, match="Rogue overrides routing_key"):
        build_asyncapi()


def walk(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [node, *(x for v in node.values() for x in walk(v))]
    if isinstance(node, list):
        return [x for v in node for x in walk(v)]
    return []


def test_defs_are_hoisted_and_every_reference_resolves(document: dict[str, Any]) -> None:
    nodes = walk(document)
    assert not [n for n in nodes if "$defs" in n]
    refs = {n["$ref"] for n in nodes if "$ref" in n}
    assert "#/components/schemas/JobState" in refs  # a nested model's schema, hoisted
    for ref in refs:
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict), ref


def test_info_servers_and_publishers(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", document["info"]["version"])
    assert document["servers"]["broker"]["protocol"] == "amqp"
    channels = document["channels"]
    assert channels["jobState"]["x-publishers"] == ["monitor", "runner", "scheduler"]
    assert channels["quotaChanged"]["x-publishers"] == ["accounting"]
    assert channels["poolStatus"]["x-publishers"] == ["scheduler"]
    assert channels["fileUploaded"]["x-publishers"] == ["api"]
    assert all(op["action"] == "receive" for op in document["operations"].values())


def test_the_subscribers_permissions_are_its_grant(document: dict[str, Any]) -> None:
    grant = access.BROKER_GRANTS[access.SUBSCRIBER]
    stated = document["components"]["securitySchemes"]["subscriber"]["x-broker-grant"]
    assert stated["user"] == "caesar-subscriber"
    assert (stated["configure"], stated["write"], stated["read"]) == (
        grant.configure,
        grant.write,
        grant.read,
    )
    assert stated["topic"] == {"exchange": "caesar.events", "write": "^$", "read": ".*"}
    assert "publishes nothing" in document["info"]["description"]


def test_real_envelopes_fit_their_channels_payload_and_wrong_ones_do_not(document: dict[str, Any]) -> None:
    state = JobStateChanged(
        job_id="j1",
        owner="alice",
        app="trivial",
        attempt=1,
        state=JobState.TIMED_OUT,
        changed_at=NOW,
        outputs=[OutputFile(name="result.txt", size_bytes=3)],
    )
    quota = QuotaChanged(owner="alice", over=True, usage={"running_jobs": 1}, revision=1, evaluated_at=NOW)
    upload = FileUploaded(
        file_id="f1",
        owner="alice",
        filename="a.fits",
        ext="fits",
        size_bytes=1,
        sha256="0" * 64,
        uploaded_at=NOW,
    )
    trace = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    for message in (state, quota, upload):
        envelope = Envelope.wrap(message, "test", trace)
        channel_id = channel_for_routing_key(document, envelope.routing_key)
        assert channel_id is not None
        payload, headers = channel_schemas(document, channel_id)
        Draft7Validator(payload).validate(json.loads(envelope.to_bytes()))
        Draft7Validator(headers).validate(envelope.trace_carrier())

    payload, _ = channel_schemas(document, "jobState")
    body = json.loads(Envelope.wrap(state, "test").to_bytes())
    wrong: list[dict[str, Any]] = [
        {**body, "data": {k: v for k, v in body["data"].items() if k != "job_id"}},
        {**body, "data": {**body["data"], "state": "SLEEPING"}},
        {**body, "data": {**body["data"], "attempt": 0}},
        {**body, "type": "org.caesar.file.uploaded.v1"},
        {**body, "routing_key": "job.state.sleeping"},
        {k: v for k, v in body.items() if k != "id"},
    ]
    for case in wrong:
        assert list(Draft7Validator(payload).iter_errors(case)), case


async def test_served_publicly_at_asyncapi_json_and_built_once(document: dict[str, Any]) -> None:
    # Nothing listens on these ports: the document needs neither broker nor database nor realm.
    settings = ApiSettings(
        auth_enabled=True,
        keycloak_url="http://127.0.0.1:1/",
        keycloak_realm="r",
        amqp_url="amqp://guest:guest@127.0.0.1:1/",
        mongo_url="mongodb://127.0.0.1:1/",
    )
    app = create_app(settings)
    runtime = create_runtime(settings)
    add_operational_routes(app, runtime)
    try:
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/asyncapi.json")  # no token: public, like /openapi.json
            assert resp.status == 200
            assert resp.content_type == "application/json"
            assert await resp.json() == document
            assert (await client.get("/caesar/api/v1.0/fileids")).status == 401  # auth is really on
    finally:
        await runtime.mongo.close()
    assert asyncapi_body() is asyncapi_body()
