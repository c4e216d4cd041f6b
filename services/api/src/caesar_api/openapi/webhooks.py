"""Paths of webhooks and their delivery logs; the shapes are in :mod:`.push_models`."""

from __future__ import annotations

from typing import Any

from caesar_api.entrypoints.routes import V2
from caesar_api.openapi.components import Schema
from caesar_api.openapi.operations import (
    delete_one,
    get_one,
    json_body,
    list_page,
    operation,
    path_param,
    problem,
    required_body,
    validation_problem,
)
from caesar_api.openapi.paging import NEXT_LINK, page_params
from caesar_api.openapi.push_models import (
    HOOK_ID_PATTERN,
    DeliveryList,
    Hook,
    HookCreated,
    HookList,
    HookRequest,
)
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
    """The usual ``limit`` and ``after``, the cursor being a webhook's or a delivery's id.

    :func:`.paging.page_params` knows file and job ids only; its fresh dictionaries are
    reused and the cursor's pattern replaced, so the bounds and wording stay the same.
    """
    limit, after = page_params(settings, item)
    after["schema"]["pattern"] = HOOK_ID_PATTERN
    return [limit, after]


def webhook_paths(settings: ApiSettings) -> dict[str, Any]:
    """``/api/v2/webhooks``, ``/api/v2/webhooks/{hook_id}`` and its ``/deliveries``."""
    invalid = validation_problem(
        "The body does not fit, or the URL is refused: not http(s), or its host does not resolve or "
        "resolves to a loopback, private, link-local, multicast, reserved or unspecified address."
    )
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
                request_body=required_body(HookRequest),
            ),
            "get": list_page(
                "listWebhooksV2",
                "List the caller's webhooks",
                json_body(HookList, "One page, newest first.", headers=NEXT_LINK),
                "An invalid limit, or a cursor that names none of the caller's webhooks.",
                parameters=_page_params(settings, "webhook"),
                tag=TAG,
            ),
        },
        f"{V2}/webhooks/{{hook_id}}": {
            "get": get_one(
                "getWebhookV2",
                "A webhook",
                Hook,
                "The webhook (no secret).",
                not_found=NOT_FOUND,
                param=HOOK_ID_PARAM,
                tag=TAG,
            ),
            "delete": delete_one(
                "deleteWebhookV2",
                "Delete a webhook",
                "Deleted, with its delivery log; nothing more is sent.",
                not_found=NOT_FOUND,
                param=HOOK_ID_PARAM,
                tag=TAG,
            ),
        },
        f"{V2}/webhooks/{{hook_id}}/deliveries": {
            "get": list_page(
                "listWebhookDeliveriesV2",
                "A webhook's deliveries",
                json_body(
                    DeliveryList,
                    "One page, newest first: each delivery's event, outcome and attempts.",
                    headers=NEXT_LINK,
                ),
                "An invalid limit, or a cursor that names none of this webhook's deliveries.",
                parameters=[HOOK_ID_PARAM, *_page_params(settings, "delivery")],
                tag=TAG,
                not_found=NOT_FOUND,
            )
        },
    }
