"""UWS 1.1 XML documents of jobs, job lists, parameters and results (pure).

Rendered with the ``vo-models`` pydantic-xml models of UWS 1.1; the unit tests validate
every kind of document against the official UWS 1.1 schema. Times are UTC with
milliseconds and a ``Z``; the elements the schema allows to be nil (owner, quote, start,
end, destruction) are ``xsi:nil`` when unknown, as UWS 1.1 asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from lxml import etree
from pydantic_xml import BaseXmlModel, element
from vo_models.uws.models import (
    NSMAP,
    ErrorSummary,
    Jobs,
    JobSummary,
    Parameter,
    ResultReference,
    Results,
    ShortJobDescription,
)
from vo_models.uws.types import ErrorType

from caesar_api.uws.views import ResultLink, UwsJobView

MEDIA_TYPE: Final = "text/xml"
RUN_ID: Final = f"{{{NSMAP['uws']}}}runId"


class JobParameters(BaseXmlModel, tag="parameters", ns="uws", nsmap=NSMAP):
    """``uws:parameters`` holding any parameters (the app's options differ per app).

    vo-models' ``Parameters`` wants one model field per parameter id; the options of our
    apps are data (one table per app), so this holds a plain list.
    """

    parameter: list[Parameter] = element(default_factory=list)


def _results(links: Sequence[ResultLink]) -> Results:
    return Results(
        results=[ResultReference(id=r.id, href=r.href, mime_type=r.mime_type, size=r.size) for r in links]
    )


def _parameters(view: UwsJobView) -> JobParameters:
    return JobParameters(parameter=[Parameter(id=name, value=value) for name, value in view.parameters])


def _xml(model: BaseXmlModel) -> bytes:
    """The document with every element the schema requires, nil ones included.

    pydantic-xml either skips every empty element (the required nil ones too) or none
    (an empty ``runId`` too, which reads as a run id of ""); so render all, then drop
    the empty optional ``runId``.
    """
    tree = etree.fromstring(model.to_xml(skip_empty=False))
    for run_id in tree.iter(RUN_ID):
        if not (run_id.text or "").strip():
            parent = run_id.getparent()
            if parent is not None:
                parent.remove(run_id)
    return bytes(etree.tostring(tree, xml_declaration=True, encoding="UTF-8"))


def job_xml(view: UwsJobView, links: Sequence[ResultLink]) -> bytes:
    """``GET /uws/<app>/<id>``: the ``uws:job`` document."""
    error = None
    if view.error is not None:
        kind = ErrorType.FATAL if view.error.fatal else ErrorType.TRANSIENT
        error = ErrorSummary(message=view.error.message, type=kind, has_detail=True)
    job = JobSummary[JobParameters](
        job_id=view.uws_id,
        run_id=view.run_id,
        owner_id=view.owner or None,
        phase=view.phase,
        quote=None,
        creation_time=view.creation_time,
        start_time=view.start_time,
        end_time=view.end_time,
        execution_duration=view.execution_duration,
        destruction=None,
        parameters=_parameters(view),
        results=_results(links),
        error_summary=error,
    )
    return _xml(job)


def job_list_xml(views: Sequence[UwsJobView], job_url: str) -> bytes:
    """``GET /uws/<app>``: ``uws:jobs``; ``job_url`` has a ``{id}`` placeholder."""
    refs = [
        ShortJobDescription(
            phase=v.phase,
            run_id=v.run_id,
            owner_id=v.owner or None,
            creation_time=v.creation_time,
            job_id=v.uws_id,
            href=job_url.format(id=v.uws_id),
        )
        for v in views
    ]
    return _xml(Jobs(jobref=refs))


def parameters_xml(view: UwsJobView) -> bytes:
    """``GET /uws/<app>/<id>/parameters``."""
    return _xml(_parameters(view))


def results_xml(links: Sequence[ResultLink]) -> bytes:
    """``GET /uws/<app>/<id>/results``."""
    return _xml(_results(links))
