"""The AsyncAPI 3.0 document of the events an outside subscriber can follow, from the code.

Subscribers used to learn the event schemas from prose; this derives them from what the
services really publish, so the two cannot drift:

* channels are the routing keys on the ``caesar.events`` topic exchange: each message
  type's :meth:`~caesar_common.events.Message.routing_key` (``job.state.<state>`` is one
  channel with a ``state`` parameter, from :class:`~caesar_common.jobstate.JobState`);
* payloads are the envelope (:class:`~caesar_common.events.Envelope`, what the bus puts
  in the body) with ``data`` the message's own pydantic JSON Schema; every model's
  ``$defs`` are generated together and hoisted into ``components/schemas``;
* headers and AMQP properties are those :meth:`caesar_common.bus.Bus.publish` sets;
* who publishes each key and what the ``subscriber`` broker user may do come from the
  grants of :mod:`caesar_common.access`, and the exchange's type and durability from its
  broker definitions.

Commands to a runner pool (:class:`~caesar_common.events.RunJob`) are left out: they go
to the pool's queue through the default exchange, never to ``caesar.events``, and the
subscriber may not read those queues. The document lists them under ``x-internal``.

Pure: no I/O; the api serves it at ``/asyncapi.json``, ``scripts/asyncapi.sh`` writes
and validates it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from caesar_common import access
from caesar_common.events import (
    EVENTS_EXCHANGE,
    MESSAGE_TYPES,
    Envelope,
    FileDeleted,
    FileUploaded,
    JobCancelRequested,
    JobStateChanged,
    JobSubmitted,
    Message,
    RunJob,
    RunnerHeartbeat,
)
from caesar_common.jobstate import JobState

Schema = dict[str, Any]

ASYNCAPI_VERSION: Final = "3.0.0"
AMQP_BINDING_VERSION: Final = "0.3.0"
SCHEMAS: Final = "#/components/schemas/"
SECURITY_SCHEME: Final = "subscriber"

ADDRESS_TEMPLATES: Final[Mapping[type[Message], tuple[str, Mapping[str, Sequence[str]]]]] = {
    JobStateChanged: ("job.state.{state}", {"state": [s.routing_suffix for s in JobState]}),
}
"""Addresses of the message types whose ``routing_key()`` is not their ``type_name``,
with the values each parameter takes (a new override must be added here: see
:func:`event_channels`)."""

INTERNAL: Final[Mapping[type[Message], str]] = {
    RunJob: (
        "A command to one runner pool, sent to its queue runner.<pool> through the default "
        "exchange (not caesar.events); the subscriber may not read those queues."
    ),
}
"""Message types that are not events for outside subscribers, and why."""

ALWAYS_SET: Final = ("specversion", "id", "time")
"""Envelope fields with defaults that every published envelope has carried since the
first version (the bus serialises every field): required for subscribers, who
deduplicate on ``id``."""

TRACE_HEADERS: Final[Schema] = {
    "type": "object",
    "description": (
        "AMQP application headers: the W3C trace context of the span that created the event "
        "(also in the envelope), absent when the producer traced nothing. Other headers may "
        "appear (a dead-lettered copy's x-caesar-reason, the broker's x-death): ignore them."
    ),
    "properties": {
        "traceparent": {"type": "string", "description": "W3C traceparent."},
        "tracestate": {"type": "string", "description": "W3C tracestate."},
    },
}

AMQP_PROPERTIES: Final[Mapping[str, str]] = {
    "content_type": "application/json",
    "delivery_mode": "2 (persistent)",
    "message_id": "the envelope's id",
    "type": "the envelope's type (org.caesar.<name>.v<version>)",
    "app_id": "the envelope's source (the publishing service)",
    "timestamp": "the envelope's time (whole seconds)",
}
"""The basic properties :meth:`caesar_common.bus.Bus.publish` sets on every event."""


@dataclass(frozen=True)
class EventChannel:
    """One routing key (or key template) of ``caesar.events`` and the message type on it."""

    channel_id: str
    address: str
    parameters: Mapping[str, Sequence[str]]
    message: type[Message]

    @property
    def message_id(self) -> str:
        return self.message.__name__


def _channel_id(address: str) -> str:
    """``job.state.{state}`` -> ``jobState``: an id AsyncAPI tools turn into code names."""
    words = [w for w in re.split(r"[._]", re.sub(r"\{[^}]*\}", "", address)) if w]
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def event_channels() -> list[EventChannel]:
    """The channels, one per message type published on ``caesar.events``.

    Raises ``ValueError`` for a message type whose routing key is neither its
    ``type_name`` nor declared in :data:`ADDRESS_TEMPLATES` or :data:`INTERNAL`: a
    document that silently guessed it would be wrong.
    """
    channels = []
    for kind in MESSAGE_TYPES.values():
        if kind in INTERNAL:
            continue
        if kind in ADDRESS_TEMPLATES:
            address, parameters = ADDRESS_TEMPLATES[kind]
        elif kind.routing_key is Message.routing_key:
            address, parameters = kind.type_name, {}
        else:
            raise ValueError(
                f"{kind.__name__} overrides routing_key(): declare its address in "
                "caesar_common.asyncapi.ADDRESS_TEMPLATES (or mark it INTERNAL)"
            )
        channels.append(EventChannel(_channel_id(address), address, parameters, kind))
    return channels


def _escape(text: str) -> str:
    """Like :func:`re.escape`, but only the metacharacters: the pattern also goes into the
    document, where a JSON Schema validator reads it as an ECMA-262 regex with the
    ``u`` flag, which rejects needless escapes such as ``\\-``."""
    return re.sub(r"([.^$*+?()[\]{}|\\])", r"\\\1", text)


def address_pattern(address: str, parameters: Mapping[str, Sequence[str]]) -> re.Pattern[str]:
    """The routing keys a channel address stands for (each ``{name}`` one of its values)."""
    parts = re.split(r"(\{[^}]*\})", address)
    regex = "".join(
        "(?:" + "|".join(_escape(v) for v in parameters[p[1:-1]]) + ")" if p.startswith("{") else _escape(p)
        for p in parts
    )
    return re.compile(regex)


def channel_for_routing_key(document: Mapping[str, Any], routing_key: str) -> str | None:
    """The id of the document's channel a routing key belongs to (``None``: no channel)."""
    for channel_id, channel in document["channels"].items():
        parameters = {name: p["enum"] for name, p in channel.get("parameters", {}).items()}
        if address_pattern(channel["address"], parameters).fullmatch(routing_key):
            return str(channel_id)
    return None


def _resolve(document: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    """``node``, or what its local ``$ref`` (``#/a/b``) points at."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Mapping[str, Any] = document
    for part in str(ref).removeprefix("#/").split("/"):
        target = target[part]
    return target


def channel_schemas(document: Mapping[str, Any], channel_id: str) -> tuple[Schema, Schema]:
    """A channel's body and headers schemas, each self-contained (JSON Schema draft 7).

    The ``components/schemas`` they refer to travel with them, so a subscriber can check
    what it receives with any JSON Schema validator (``jsonschema.Draft7Validator``).
    """
    (message_ref,) = document["channels"][channel_id]["messages"].values()
    message = _resolve(document, message_ref)
    components = {"schemas": document["components"]["schemas"]}
    return (
        {**_resolve(document, message["payload"]), "components": components},
        {**_resolve(document, message["headers"]), "components": components},
    )


def publishers(routing_key: str) -> list[str]:
    """The services whose broker grant lets them publish ``routing_key``."""
    return [
        g.role
        for g in access.BROKER_GRANTS.values()
        if not g.administrator and re.fullmatch(g.publishes, routing_key)
    ]


def _exchange_binding() -> Schema:
    """The AMQP channel binding of ``caesar.events``, from the broker's own definitions."""
    (exchange,) = (
        e for e in access.vhost_definitions("/", roles=[])["exchanges"] if e["name"] == EVENTS_EXCHANGE
    )
    return {
        "is": "routingKey",
        "exchange": {
            "name": EVENTS_EXCHANGE,
            "type": exchange["type"],
            "durable": exchange["durable"],
            "autoDelete": exchange["auto_delete"],
            "vhost": "/",
        },
        "bindingVersion": AMQP_BINDING_VERSION,
    }


def _model_schemas(channels: Sequence[EventChannel]) -> Schema:
    """Every message's and the envelope's JSON Schema, their ``$defs`` in one namespace.

    Generated together (pydantic names each model once, renaming clashes), with
    references pointing into ``components/schemas``, where all of them go.
    """
    kinds: list[type[BaseModel]] = [*(c.message for c in channels), Envelope]
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(kind, "serialization") for kind in kinds]
    _, top = models_json_schema(models, ref_template=SCHEMAS + "{model}")
    schemas: Schema = top["$defs"]
    envelope = schemas["Envelope"]
    envelope["required"] = sorted(
        set(envelope["required"]) | set(ALWAYS_SET), key=list(envelope["properties"]).index
    )
    envelope["properties"]["data"]["description"] = "The message; its schema depends on the type."
    return schemas


SUMMARIES: Final[Mapping[type[Message], str]] = {
    FileUploaded: "A user uploaded a file (an image jobs can take as input).",
    FileDeleted: "A user's file was deleted.",
    JobSubmitted: "A user submitted a job (accepted by the api, not yet scheduled).",
    JobCancelRequested: "A user asked to cancel a job (it ends CANCELED unless it finished first).",
    JobStateChanged: "A job entered a state (one routing key per state); terminal states carry the outcome.",
    RunnerHeartbeat: "A runner is alive: its pool, free slots and the attempts it runs (every few seconds).",
}
"""One line for the channels whose model has no docstring (the others use its first line)."""


def _summary(kind: type[Message]) -> str:
    doc = (kind.__doc__ or "").strip()
    return SUMMARIES.get(kind) or (doc.splitlines()[0] if doc else f"A {kind.type_name} event.")


def _payload(channel: EventChannel) -> Schema:
    """The body: the envelope with its type, routing key and data pinned to this message."""
    keys = address_pattern(channel.address, channel.parameters).pattern
    return {
        "title": f"{channel.message_id} envelope",
        "allOf": [
            {"$ref": SCHEMAS + "Envelope"},
            {
                "type": "object",
                "properties": {
                    "type": {"const": channel.message.event_type()},
                    "routing_key": {"type": "string", "pattern": f"^{keys}$"},
                    "data": {"$ref": SCHEMAS + channel.message_id},
                },
            },
        ],
    }


def _message(channel: EventChannel) -> Schema:
    kind = channel.message
    return {
        "name": kind.event_type(),
        "title": channel.message_id,
        "summary": _summary(kind),
        "description": (
            f"A CloudEvents-style envelope of type `{kind.event_type()}` whose `data` is a "
            f"{channel.message_id}. Delivery is at least once: deduplicate on `id`. Fields this "
            "document does not list may appear in newer versions of the same type: ignore them."
        ),
        "contentType": "application/json",
        "headers": TRACE_HEADERS,
        "payload": _payload(channel),
        "bindings": {"amqp": {"messageType": kind.event_type(), "bindingVersion": AMQP_BINDING_VERSION}},
        "x-amqp-properties": dict(AMQP_PROPERTIES),
    }


def _channel(channel: EventChannel) -> Schema:
    keys = [
        channel.address.replace(f"{{{name}}}", value)
        for name, values in channel.parameters.items()
        for value in values
    ] or [channel.address]
    by = sorted({role for key in keys for role in publishers(key)})
    out: Schema = {
        "address": channel.address,
        "title": channel.address,
        "summary": _summary(channel.message),
        "description": (
            f"Routing key `{channel.address}` on the topic exchange `{EVENTS_EXCHANGE}`. "
            f"Published by: {', '.join(by) or 'nobody'}."
        ),
        "messages": {channel.message_id: {"$ref": f"#/components/messages/{channel.message_id}"}},
        "bindings": {"amqp": _exchange_binding()},
        "x-publishers": by,
    }
    if channel.parameters:
        out["parameters"] = {
            name: {"enum": list(values), "description": f"The {name}, lower case ({', '.join(values)})."}
            for name, values in channel.parameters.items()
        }
    return out


def _operation(channel: EventChannel) -> Schema:
    binding_key = re.sub(r"\{[^}]*\}", "*", channel.address)
    return {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{channel.channel_id}"},
        "title": f"Receive {channel.address}",
        "summary": f"A subscriber's queue bound to `{binding_key}` (or `#`) receives these.",
        "messages": [{"$ref": f"#/channels/{channel.channel_id}/messages/{channel.message_id}"}],
        "bindings": {
            "amqp": {
                "ack": True,
                "deliveryMode": 2,
                "timestamp": True,
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
    }


def subscriber_permissions() -> Schema:
    """What the read-only ``subscriber`` broker user may do (its grant, and in words)."""
    grant = access.BROKER_GRANTS[access.SUBSCRIBER]
    return {
        "user": grant.user,
        "configure": grant.configure,
        "write": grant.write,
        "read": grant.read,
        "topic": {"exchange": EVENTS_EXCHANGE, "write": grant.publishes, "read": grant.binds},
        "description": (
            f"The broker user {grant.user} declares, binds and consumes its own queues only "
            f"(configure and write {grant.configure}; read {grant.read}, i.e. those queues and "
            f"{EVENTS_EXCHANGE}); its queues may bind to {EVENTS_EXCHANGE} with any key (topic "
            f"read {grant.binds}); it publishes nothing (topic write {grant.publishes}, and no "
            "write permission on the exchange) and cannot read any service queue."
        ),
    }


def _package_version() -> str:
    try:
        return version("caesar-common")
    except PackageNotFoundError:  # a source checkout without the package installed
        return "0+unknown"


def build_asyncapi() -> Schema:
    """The document served at ``/asyncapi.json`` (a new dict on each call)."""
    channels = event_channels()
    schemas = _model_schemas(channels)
    permissions = subscriber_permissions()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "caesar-rest events",
            "version": _package_version(),
            "description": (
                f"Every state change of caesar-rest is published on the durable topic exchange "
                f"`{EVENTS_EXCHANGE}`, one routing key per kind of event. An outside system follows "
                "them with the read-only broker user: it declares a queue of its own (`sub.<name>`, or "
                "a server-named one), binds it with the keys it wants (`#` for all, `job.state.*`, "
                "...) and consumes it. Bodies are CloudEvents-style JSON envelopes; `type` carries the "
                "schema version (adding an optional field keeps it, removing or retyping one does not). "
                f"\n\nPermissions: {permissions['description']}\n\nNot listed: "
                + " ".join(f"{kind.__name__} ({why})" for kind, why in INTERNAL.items())
                + "\n\nSee docs/subscribers.md."
            ),
            "license": {"name": "GPL-3.0-or-later"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "{host}:{port}",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "pathname": "/",
                "title": "The deployment's RabbitMQ (vhost /)",
                "description": (
                    "A placeholder: use your deployment's broker. Docker Compose publishes AMQP on "
                    "127.0.0.1:5672 only, so a subscriber runs on the Docker host or reaches it through "
                    "an SSH tunnel or a TLS proxy."
                ),
                "variables": {
                    "host": {"default": "127.0.0.1", "description": "The broker's host name."},
                    "port": {"default": "5672", "description": "The broker's AMQP port."},
                },
                "security": [{"$ref": f"#/components/securitySchemes/{SECURITY_SCHEME}"}],
            }
        },
        "channels": {c.channel_id: _channel(c) for c in channels},
        "operations": {f"receive{c.message_id}": _operation(c) for c in channels},
        "components": {
            "schemas": schemas,
            "messages": {c.message_id: _message(c) for c in channels},
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "userPassword",
                    "description": (
                        f"User {permissions['user']}; its password is BROKER_SUBSCRIBER_PASSWORD in the "
                        f"deployment's .env (make secrets). {permissions['description']}"
                    ),
                    "x-broker-grant": permissions,
                }
            },
        },
        "x-internal": [
            {"message": kind.__name__, "type": kind.event_type(), "reason": why}
            for kind, why in INTERNAL.items()
        ],
    }
