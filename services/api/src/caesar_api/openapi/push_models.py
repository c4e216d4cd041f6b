"""The shapes of webhooks and their deliveries (OpenAPI only; the bodies come from
``caesar_api.push.domain.hooks``). :mod:`.components` lists them among the component schemas.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from caesar_api.push.domain.hooks import CANCELED, DELIVERED, FAILED, PENDING, STATE_NAMES
from caesar_api.push.domain.url_policy import URL_MAX
from caesar_common.ids import FILE_ID_RE, JOB_ID_RE

TIME = "ISO 8601 with its offset (UTC), to the millisecond."
HOOK_ID_PATTERN = FILE_ID_RE.pattern
StateName = Literal[STATE_NAMES]  # type: ignore[valid-type]


class HookRequest(BaseModel):
    """``POST /api/v2/webhooks``. The URL must resolve to public addresses only (unless the
    operator allows private ones); its host is resolved when the hook is registered."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=URL_MAX,
        pattern=r"^https?://",
        description="Where deliveries are POSTed (http or https, no credentials, no fragment).",
    )
    job_id: str | None = Field(
        None, pattern=JOB_ID_RE.pattern, description="One of the caller's jobs; absent or null: all of them."
    )
    states: list[StateName] | None = Field(  # type: ignore[valid-type]
        None,
        min_length=1,
        json_schema_extra={"uniqueItems": True},
        description="Only these states; absent or null: every state.",
    )


class HookLinks(BaseModel):
    self_: str = Field(alias="self")
    deliveries: str


class Hook(BaseModel):
    """A webhook (its secret is only in the answer that created it)."""

    hook_id: str = Field(pattern=HOOK_ID_PATTERN)
    url: str
    job_id: str | None = Field(pattern=JOB_ID_RE.pattern)
    states: list[str] | None
    created_at: str | None = Field(description=TIME)
    links: HookLinks


class HookCreated(Hook):
    """The new webhook with its secret: keep it, it is never shown again."""

    secret: str = Field(description="The HMAC-SHA256 key of X-Caesar-Signature.")


class HookList(BaseModel):
    """One page of the caller's webhooks, newest first."""

    items: list[Hook]
    next: str | None = Field(description="The next page's URL (also in the Link header), or null.")


class DeliveryAttempt(BaseModel):
    """One POST of a delivery."""

    at: str | None = Field(description=TIME)
    status_code: int | None = Field(description="The receiver's HTTP status, or null if none came.")
    error: str | None = Field(description="Why the attempt failed (HTTP status, timeout, refused address).")
    duration_ms: int | None


class Delivery(BaseModel):
    """A job state sent to a webhook, with every attempt."""

    delivery_id: str = Field(pattern=HOOK_ID_PATTERN)
    event_id: str = Field(description="X-Caesar-Event-Id: <job_id>.<attempt>.<STATE>.")
    job_id: str = Field(pattern=JOB_ID_RE.pattern)
    state: str
    attempt: int
    outcome: Literal[PENDING, DELIVERED, FAILED, CANCELED]  # type: ignore[valid-type]
    attempts: list[DeliveryAttempt]
    created_at: str | None = Field(description=TIME)
    next_attempt_at: str | None = Field(description="When it is tried next (pending only). " + TIME)
    delivered_at: str | None = Field(description=TIME)


class DeliveryList(BaseModel):
    """One page of a webhook's deliveries, newest first."""

    items: list[Delivery]
    next: str | None = Field(description="The next page's URL (also in the Link header), or null.")


PUSH_MODELS: tuple[type[BaseModel], ...] = (
    HookRequest,
    HookLinks,
    Hook,
    HookCreated,
    HookList,
    DeliveryAttempt,
    Delivery,
    DeliveryList,
)
"""The component schemas of this module."""
PUSH_REQUEST_MODELS: frozenset[type[BaseModel]] = frozenset({HookRequest})
