"""Webhooks and their deliveries: request checks, records and what clients see (pure).

A hook belongs to one owner and fires for one of their jobs (``job_id``) or all of them,
optionally only for some ``states``. One delivery exists per (hook, job state): its id
is derived from both, so the event delivered twice by the broker, or applied again
after a crash, finds its delivery already there and creates nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from caesar_api.domain.errors import shown
from caesar_api.domain.responses import v2_time
from caesar_api.domain.v2_requests import FieldError, InvalidBody, pointer
from caesar_api.push.domain.url_policy import UrlRefused, parse_hook_url
from caesar_common.ids import is_job_id
from caesar_common.jobstate import JobState
from caesar_common.store import Document

BODY_FIELDS: Final = frozenset({"url", "job_id", "states"})
STATE_NAMES: Final = tuple(s.value for s in JobState)
PENDING: Final = "pending"
DELIVERED: Final = "delivered"
FAILED: Final = "failed"
CANCELED: Final = "canceled"
BASE: Final = "/api/v2/webhooks"
REFUSED: Final = "refused: "
"""How an attempt's error starts when the SSRF guard stopped it (nothing was sent)."""


@dataclass(frozen=True)
class SendResult:
    """What one attempt got: the status code, or why there was none."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def refused(self) -> bool:
        return self.error is not None and self.error.startswith(REFUSED)


@dataclass(frozen=True)
class HookRequest:
    """A structurally valid ``POST /api/v2/webhooks`` body (the address not resolved yet)."""

    url: str
    host: str
    job_id: str | None = None
    states: tuple[str, ...] | None = None


def parse_hook_request(body: object) -> HookRequest:
    """Check the body's shape; :class:`InvalidBody` (422) with every problem otherwise."""
    if not isinstance(body, Mapping):
        raise InvalidBody([FieldError("", "the body must be a JSON object")])
    errors: list[FieldError] = []
    for key in sorted(str(k) for k in body if k not in BODY_FIELDS):
        errors.append(
            FieldError(pointer([key]), f"unknown field {shown(key)}; use {', '.join(sorted(BODY_FIELDS))}")
        )
    url, host = "", ""
    try:
        parsed = parse_hook_url(body.get("url"))
        url, host = str(parsed), str(parsed.host)
    except UrlRefused as exc:
        errors.append(FieldError("/url", str(exc)))
    job_id = body.get("job_id")
    if job_id is not None and (not isinstance(job_id, str) or not is_job_id(job_id)):
        errors.append(FieldError("/job_id", "a job id (a dashed uuid), or null for all of your jobs"))
    states = body.get("states")
    if states is not None:
        if not isinstance(states, list) or not states:
            errors.append(FieldError("/states", f"a non-empty list of states: {', '.join(STATE_NAMES)}"))
        else:
            for index, state in enumerate(states):
                if state not in STATE_NAMES:
                    errors.append(FieldError(pointer(["states", index]), f"unknown state {shown(state)}"))
            if len(set(map(str, states))) != len(states):
                errors.append(FieldError("/states", "a state is listed twice"))
    if errors:
        raise InvalidBody(errors)
    return HookRequest(url, host, job_id, tuple(states) if states is not None else None)


def hook_record(
    hook_id: str, owner: str, request: HookRequest, secret: str, created_at: datetime
) -> Document:
    return {
        "_id": hook_id,
        "owner": owner,
        "url": request.url,
        "job_id": request.job_id,
        "states": list(request.states) if request.states is not None else None,
        "secret": secret,
        "created_at": created_at,
    }


def hook_view(hook: Mapping[str, Any], *, with_secret: bool = False) -> dict[str, Any]:
    """A hook as its owner sees it; the secret only in the answer that created it."""
    hook_id = str(hook["_id"])
    view: dict[str, Any] = {
        "hook_id": hook_id,
        "url": hook["url"],
        "job_id": hook.get("job_id"),
        "states": hook.get("states"),
        "created_at": v2_time(hook.get("created_at")),
        "links": {"self": f"{BASE}/{hook_id}", "deliveries": f"{BASE}/{hook_id}/deliveries"},
    }
    if with_secret:
        view["secret"] = hook["secret"]
    return view


def hook_matches(hook: Mapping[str, Any], job_id: str, state: str) -> bool:
    """Whether ``hook`` fires for this job reaching this state."""
    if hook.get("job_id") not in (None, job_id):
        return False
    states = hook.get("states")
    return states is None or state in states


def event_id(job_id: str, attempt: int, state: str) -> str:
    """``X-Caesar-Event-Id``: the same for every hook, for the job's state in an attempt."""
    return f"{job_id}.{attempt}.{state}"


def delivery_id(hook_id: str, job_id: str, attempt: int, state: str) -> str:
    """The idempotent id of a hook's delivery of a job state (32 hex characters)."""
    key = f"{hook_id}|{event_id(job_id, attempt, state)}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(frozen=True)
class ShownState:
    """A state the projection applied to a job (a webhook's event)."""

    job_id: str
    owner: str
    attempt: int
    state: str
    changed_at: datetime


def new_delivery(
    hook: Mapping[str, Any], event: ShownState, job: Mapping[str, Any], now: datetime
) -> Document:
    """The delivery record, with the exact body every attempt sends."""
    hook_id = str(hook["_id"])
    ident = event_id(event.job_id, event.attempt, event.state)
    body = {
        "hook_id": hook_id,
        "event_id": ident,
        "job_id": event.job_id,
        "state": event.state,
        "attempt": event.attempt,
        "at": v2_time(event.changed_at),
        "job": dict(job),
    }
    return {
        "_id": delivery_id(hook_id, event.job_id, event.attempt, event.state),
        "hook_id": hook_id,
        "owner": event.owner,
        "event_id": ident,
        "job_id": event.job_id,
        "state": event.state,
        "attempt": event.attempt,
        "body": json.dumps(body, separators=(",", ":"), sort_keys=True),
        "status": PENDING,
        "attempts": [],
        "created_at": now,
        "next_at": now,
    }


def attempt_entry(at: datetime, *, status_code: int | None, error: str | None, duration_ms: int) -> Document:
    return {"at": at, "status_code": status_code, "error": error, "duration_ms": duration_ms}


def delivery_view(delivery: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of a hook's delivery log."""
    attempts: Sequence[Mapping[str, Any]] = delivery.get("attempts") or ()
    return {
        "delivery_id": str(delivery["_id"]),
        "event_id": delivery["event_id"],
        "job_id": delivery["job_id"],
        "state": delivery["state"],
        "attempt": delivery["attempt"],
        "outcome": delivery["status"],
        "attempts": [
            {
                "at": v2_time(a.get("at")),
                "status_code": a.get("status_code"),
                "error": a.get("error"),
                "duration_ms": a.get("duration_ms"),
            }
            for a in attempts
        ],
        "created_at": v2_time(delivery.get("created_at")),
        "next_attempt_at": v2_time(delivery.get("next_at")) if delivery["status"] == PENDING else None,
        "delivered_at": v2_time(delivery.get("delivered_at")),
    }


def plan_deliveries(
    events: Sequence[ShownState],
    hooks: Sequence[Mapping[str, Any]],
    jobs: Mapping[str, Mapping[str, Any]],
    now: datetime,
    render: Callable[[Mapping[str, Any]], Mapping[str, Any]],
) -> list[Document]:
    """The deliveries a batch of job states makes: one per matching hook and *applied* state.

    A state counts only if the job's history holds it: the projection applied it (now,
    or before a crash made the broker deliver it again). A late or duplicate event that
    changed nothing finds its position either absent (no delivery) or already delivered
    to (the same id, which the insert ignores). ``render`` gives the job as the body
    shows it, as the record stands when the delivery is made.
    """
    planned: dict[str, Document] = {}
    for event in events:
        job = jobs.get(event.job_id)
        if job is None or job.get("owner") != event.owner:
            continue
        applied = {(int(e["attempt"]), str(e["state"])) for e in job.get("history") or ()}
        if (event.attempt, event.state) not in applied:
            continue
        for hook in hooks:
            if hook.get("owner") == event.owner and hook_matches(hook, event.job_id, event.state):
                delivery = new_delivery(hook, event, render(job), now)
                planned.setdefault(str(delivery["_id"]), delivery)
    return list(planned.values())
