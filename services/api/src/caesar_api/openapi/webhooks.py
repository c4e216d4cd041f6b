"""Paths of webhooks and their delivery logs; the shapes are in :mod:`.push_models`."""

from __future__ import annotations

from typing import Any

from caesar_api.entrypoints.routes import V2
from caesar_api.openapi.components import Schema, ref
from caesar_api.openapi.operations import PROBLEM_JSON, json_body, operation, path_param, problem, query_param
from caesar_api.openapi.paging import NEXT_LINK
from caesar_api.openapi.push_models import (
    HOOK_ID_PATTERN,
    DeliveryList,
    Hook,
    HookCreated,
    HookList,
    HookRequest,
)
from caesar_api.openapi.v2_models import ValidationProblem
from caesar_api.settings import ApiSettings

TAG = "webhooks"
NOT_FOUND = "Unknown webhook, not the caller's, or not a webhook id."
HOOK_ID_PARAM = path_param("hook_id", "Webhook id (32 lowercase hex characters).", HOOK_ID_PATTERN)
LOCATION: Schema = {"Location": {"description": "The new webhook's URL.", "schema": {"type": "string"}}}
HOOK_LINKS: dict[str, Schema] = {
    name: {"operationId": target, "parameters": {"hook_id": "$response.body#/hook_id"}}
    for name, target in (
        ("GetWebhook", "getWebhookV2"),
        ("ListDeliveries", "listWebhookDeliveriesV2"),
        ("DeleteWebhook", "deleteWebhookV2"),
    )
}
SIGNING = (
    "A delivery is a POST of {hook_id, event_id, job_id, state, attempt, at, job} with the headers "
    "X-Caesar-Event-Id, X-Caesar-Timestamp (Unix seconds) and X-Caesar-Signature: sha256=<hex "
    'HMAC-SHA256 of "<timestamp>.<body>" with the secret>. A 2xx delivers it; anything else is retried '
    "with exponential backoff."
)


def _page_params(settings: ApiSettings, item: str) -> list[Schema]:
    return [
        query_param(
            "limit",
            f"Items per page (default {settings.default_page_size}).",
            {"type": "integer", "minimum": 1, "maximum": settings.max_page_size},
        ),
        query_param(
            "after",
            f"Id of the last {item} of the previous page (from the Link header).",
            {"type": "string", "pattern": HOOK_ID_PATTERN},
        ),
    ]


def webhook_paths(settings: ApiSettings) -> dict[str, Any]:
    """``/api/v2/webhooks``, ``/api/v2/webhooks/{hook_id}`` and its ``/deliveries``."""
    invalid = {
        "description": (
            "The body does not fit, or the URL is refused: not http(s), or its host does not resolve or "
            "resolves to a loopback, private, link-local, multicast, reserved or unspecified address."
        ),
        "content": {PROBLEM_JSON: {"schema": ref(ValidationProblem)}},
    }
    return {
        f"{V2}/webhooks": {
            "post": operation(
                "createWebhookV2",
                "Register a webhook",
                {
                    "201": json_body(
                        HookCreated,
                        "The webhook with its secret (shown this once).",
                        headers=LOCATION,
                        links=HOOK_LINKS,
                    ),
                    "400": problem("The body is not JSON."),
                    "403": problem(f"The caller has {settings.webhooks_max_per_user} webhooks already."),
                    "404": problem("job_id is not one of the caller's jobs."),
                    "408": problem(f"The body did not arrive within {settings.http_body_timeout_s:g} s."),
                    "422": invalid,
                },
                tag=TAG,
                description=SIGNING,
                request_body={
                    "required": True,
                    "content": {"application/json": {"schema": ref(HookRequest)}},
                },
            ),
            "get": operation(
                "listWebhooksV2",
                "List the caller's webhooks",
                {
                    "200": json_body(HookList, "One page, newest first.", headers=NEXT_LINK),
                    "400": problem("An invalid limit, or a cursor that names none of the caller's webhooks."),
                },
                tag=TAG,
                parameters=_page_params(settings, "webhook"),
            ),
        },
        f"{V2}/webhooks/{{hook_id}}": {
            "get": operation(
                "getWebhookV2",
                "A webhook",
                {"200": json_body(Hook, "The webhook (no secret)."), "404": problem(NOT_FOUND)},
                tag=TAG,
                parameters=[HOOK_ID_PARAM],
            ),
            "delete": operation(
                "deleteWebhookV2",
                "Delete a webhook",
                {
                    "204": {"description": "Deleted, with its delivery log; nothing more is sent."},
                    "404": problem(NOT_FOUND),
                },
                tag=TAG,
                parameters=[HOOK_ID_PARAM],
            ),
        },
        f"{V2}/webhooks/{{hook_id}}/deliveries": {
            "get": operation(
                "listWebhookDeliveriesV2",
                "A webhook's deliveries",
                {
                    "200": json_body(
                        DeliveryList,
                        "One page, newest first: each delivery's event, outcome and attempts.",
                        headers=NEXT_LINK,
                    ),
                    "400": problem(
                        "An invalid limit, or a cursor that names none of this webhook's deliveries."
                    ),
                    "404": problem(NOT_FOUND),
                },
                tag=TAG,
                parameters=[HOOK_ID_PARAM, *_page_params(settings, "delivery")],
            )
        },
    }
