"""Use cases of webhooks: register, look up, list, remove, and a hook's delivery log.

A hook is its owner's alone: another user's hook, and a hook for another user's job,
answer the same 404 as one that does not exist. Every check runs before the one write,
so a refused registration leaves nothing behind.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from caesar_api.adapters.pagination import Page
from caesar_api.domain.errors import ApiError, shown
from caesar_api.domain.v2_requests import FieldError, InvalidBody
from caesar_api.push.domain.hooks import HookRequest, hook_record
from caesar_api.push.domain.signing import new_secret
from caesar_common.ids import FILE_ID_RE
from caesar_common.store import Document


class Hooks(Protocol):
    async def add(self, record: Document) -> None: ...

    async def count(self, owner: str) -> int: ...

    async def get(self, owner: str, hook_id: str) -> Document | None: ...

    async def page(self, owner: str, limit: int, after: Document | None) -> Page: ...

    async def delete(self, hook: Document) -> bool: ...


class Deliveries(Protocol):
    async def page(self, hook_id: str, limit: int, after: Document | None) -> Page: ...

    async def get(self, hook_id: str, delivery_id: str) -> Document | None: ...

    async def remove_of_hook(self, hook_id: str) -> int: ...


class OwnedJobs(Protocol):
    async def get(self, owner: str, job_id: str) -> Document | None: ...


class UrlChecker(Protocol):
    async def refusal(self, url: str) -> str | None: ...


def is_hook_id(value: str) -> bool:
    """Hook and delivery ids are 32 lowercase hex characters."""
    return bool(FILE_ID_RE.fullmatch(value))


def hook_not_found(hook_id: str) -> ApiError:
    return ApiError(404, f"Webhook {shown(hook_id)} not found")


async def register(
    request: HookRequest,
    owner: str,
    *,
    hooks: Hooks,
    jobs: OwnedJobs,
    urls: UrlChecker,
    max_per_owner: int,
    now: datetime,
) -> Document:
    """Store a new hook with a fresh secret; the record returned holds the secret."""
    if request.job_id is not None and await jobs.get(owner, request.job_id) is None:
        raise ApiError(404, f"Job {request.job_id} not found")
    if await hooks.count(owner) >= max_per_owner:
        raise ApiError(403, f"You have {max_per_owner} webhooks, the most allowed; delete one first")
    reason = await urls.refusal(request.url)
    if reason is not None:
        raise InvalidBody([FieldError("/url", f"refused: {reason}")], "The webhook URL is not allowed")
    record = hook_record(uuid.uuid4().hex, owner, request, new_secret(), now)
    await hooks.add(record)
    return record


async def owned_hook(hooks: Hooks, owner: str, hook_id: str) -> Document:
    if not is_hook_id(hook_id):
        raise hook_not_found(hook_id)
    hook = await hooks.get(owner, hook_id)
    if hook is None:
        raise hook_not_found(hook_id)
    return hook


async def hooks_page(hooks: Hooks, owner: str, limit: int, after_id: str | None) -> Page:
    """One page of the owner's hooks; a cursor naming none of them is a 400."""
    after = None
    if after_id is not None:
        after = await hooks.get(owner, after_id)
        if after is None:
            raise ApiError(400, f"Invalid after cursor {shown(after_id)}: no such webhook of yours")
    return await hooks.page(owner, limit, after)


async def remove(hooks: Hooks, deliveries: Deliveries, owner: str, hook_id: str) -> None:
    """Delete the hook, then its delivery log (a delivery left by a crash between the two
    is cancelled by the loop, which finds no hook)."""
    hook = await owned_hook(hooks, owner, hook_id)
    if not await hooks.delete(hook):
        raise hook_not_found(hook_id)
    await deliveries.remove_of_hook(str(hook["_id"]))


async def deliveries_page(
    hooks: Hooks, deliveries: Deliveries, owner: str, hook_id: str, limit: int, after_id: str | None
) -> Page:
    hook = await owned_hook(hooks, owner, hook_id)
    after = None
    if after_id is not None:
        after = await deliveries.get(str(hook["_id"]), after_id)
        if after is None:
            raise ApiError(400, f"Invalid after cursor {shown(after_id)}: no such delivery of this webhook")
    return await deliveries.page(str(hook["_id"]), limit, after)
