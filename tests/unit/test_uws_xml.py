"""What the UWS routes serve is valid against the official UWS 1.1 schema.

The schema is ``tests/unit/uws_schema/UWS.xsd`` (the IVOA standard's own file, see
``SOURCE.md`` there); its xlink import is resolved to a local file, so no network.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from pyvo.io.uws import parse_job, parse_job_list
from vo_models.uws.types import ExecutionPhase

from caesar_api.uws.views import ErrorView, ResultLink, UwsJobView
from caesar_api.uws.xml import job_list_xml, job_xml, parameters_xml, results_xml

SCHEMA_DIR = Path(__file__).parent / "uws_schema"
XLINK_URL = "http://www.ivoa.net/xml/Xlink/xlink.xsd"
T0 = datetime(2026, 11, 30, 12, 0, 0, 123000, tzinfo=UTC)


class LocalXlink(etree.Resolver):  # type: ignore[misc]
    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        if system_url == XLINK_URL:
            return self.resolve_filename(str(SCHEMA_DIR / "xlink.xsd"), context)
        if system_url.startswith(("http:", "https:")):
            raise AssertionError(f"the schema wants {system_url} from the network")
        return None  # a local file: the parser reads it


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(LocalXlink())
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "UWS.xsd"), parser))


def valid(schema: etree.XMLSchema, document: bytes) -> etree._Element:
    root = etree.fromstring(document)
    assert schema.validate(root), schema.error_log
    return root


def view(**fields: Any) -> UwsJobView:
    base: dict[str, Any] = {
        "uws_id": "11111111-2222-4333-8444-555555555555",
        "app": "aegean",
        "owner": "alice",
        "phase": ExecutionPhase.COMPLETED,
        "creation_time": T0,
        "execution_duration": 3600,
        "parameters": [("seedthr", "5.0"), ("inputfile", "0" * 32)],
        "run_id": "survey <&> 1",
        "start_time": T0,
        "end_time": T0,
    }
    return UwsJobView(**{**base, **fields})


LINKS = [
    ResultLink("sources-votable", "http://h/api/v2/jobs/j/catalog?format=votable&kind=sources", "x/y", 10),
    ResultLink("preview", "http://h/api/v2/jobs/j/preview.png", "image/png"),
]


def test_a_completed_job_with_results(schema: etree.XMLSchema) -> None:
    document = job_xml(view(), LINKS)
    valid(schema, document)
    parsed = parse_job(io.BytesIO(document))
    assert parsed.phase == "COMPLETED"
    assert parsed.runid == "survey <&> 1"
    assert [r.href for r in parsed.results] == [link.href for link in LINKS]
    assert parsed.version == "1.1"


def test_a_pending_draft_with_every_unknown_field_nil(schema: etree.XMLSchema) -> None:
    document = job_xml(
        view(phase=ExecutionPhase.PENDING, run_id=None, start_time=None, end_time=None, owner=""), []
    )
    root = valid(schema, document)
    nil = "{http://www.w3.org/2001/XMLSchema-instance}nil"
    uws = "{http://www.ivoa.net/xml/UWS/v1.0}"
    for name in ("ownerId", "quote", "startTime", "endTime", "destruction"):
        element = root.find(uws + name)
        assert element is not None, name
        assert element.get(nil) == "true", name
    assert root.find(uws + "runId") is None


def test_an_error_job_has_its_summary(schema: etree.XMLSchema) -> None:
    document = job_xml(
        view(phase=ExecutionPhase.ERROR, error=ErrorView("Process terminated with return code 2", True)), []
    )
    valid(schema, document)
    parsed = parse_job(io.BytesIO(document))
    assert parsed.errorsummary.message.content == "Process terminated with return code 2"
    assert parsed.errorsummary.type_ == "fatal"


def test_job_list_parameters_and_results_documents(schema: etree.XMLSchema) -> None:
    listing = job_list_xml(
        [view(), view(uws_id="d", phase=ExecutionPhase.PENDING, run_id=None)], "http://h/uws/aegean/{id}"
    )
    root = valid(schema, listing)
    refs = parse_job_list(io.BytesIO(listing))
    assert [(r.jobid, r.phase) for r in refs] == [(view().uws_id, "COMPLETED"), ("d", "PENDING")]
    hrefs = [ref.get("{http://www.w3.org/1999/xlink}href") for ref in root]
    assert hrefs[1] == "http://h/uws/aegean/d"
    valid(schema, job_list_xml([], "http://h/uws/aegean/{id}"))
    valid(schema, parameters_xml(view()))
    valid(schema, results_xml(LINKS))
    valid(schema, results_xml([]))


def test_the_schema_catches_a_broken_document(schema: etree.XMLSchema) -> None:
    """The check can fail: a job without its required phase is refused."""
    root = etree.fromstring(job_xml(view(), []))
    root.remove(root.find("{http://www.ivoa.net/xml/UWS/v1.0}phase"))
    assert not schema.validate(root)
