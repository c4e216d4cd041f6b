"""From an envelope to the handler of its message type: every service's message router.

Each service declares, in its ``handlers.py``, a ``HANDLERS`` table from message types to
plain functions ``handler(message, envelope, deps)`` and builds its bus handler with
:func:`route_by_type`. Event types a service does not know (a newer producer's) or does
not handle are acked and dropped, not dead-lettered: they are not errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from caesar_common.bus import Handler
from caesar_common.events import Envelope, Message, decode
from caesar_common.logging import get_logger

log = get_logger(__name__)

D = TypeVar("D")
MessageHandler = Callable[[Any, Envelope, D], Awaitable[None]]
"""``handler(message, envelope, deps)``: the message is already decoded to its type."""

HandlerTable = Mapping[type[Message], MessageHandler[D]]


def decode_known(envelope: Envelope) -> Message | None:
    """The envelope's message, or ``None`` for a type this release does not know."""
    try:
        return decode(envelope)
    except KeyError:
        return None


def route_by_type(handlers: HandlerTable[D], deps: D) -> Handler:
    """A bus handler that decodes the envelope and calls the handler of its type."""

    async def route(envelope: Envelope) -> None:
        try:
            message = decode(envelope)
        except KeyError:
            log.info("unknown event type ignored", type=envelope.type, event_id=envelope.id)
            return
        handler = handlers.get(type(message))
        if handler is None:
            log.debug("event type not handled here", type=envelope.type)
            return
        await handler(message, envelope, deps)

    return route
