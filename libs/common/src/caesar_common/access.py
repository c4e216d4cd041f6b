"""Who may do what on the broker and in the database: one user per service, least privilege.

This is the one statement of the deployment's privileges. The local stack
(``scripts/infra.sh``), Docker Compose (``make secrets`` writes the broker definitions
and ``deploy/mongodb`` creates the database users) and the tests that prove each denial
all read it, so the grants cannot drift between them.

It uses the standard library only: ``make secrets`` runs it with the system ``python3``
on a machine that has Docker but not the project's environment.

Broker grants follow RabbitMQ's access control: *configure* declares and deletes,
*write* publishes and binds a queue, *read* consumes and binds from an exchange. On top,
topic permissions limit the routing keys a service may publish on ``caesar.events``
(write) and the binding keys its queues may use (read). The exchanges themselves are
part of the broker's setup, not the services': services declare them passively, so no
service can delete one.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICES = ("api", "scheduler", "runner", "monitor", "accounting")
EVENTS_EXCHANGE = "caesar.events"
DEAD_LETTER_EXCHANGE = "caesar.dlx"
ADMIN = "admin"
SUBSCRIBER = "subscriber"

# Routing keys of the events each service publishes (a unit test checks them against the
# event models and the services' own code).
_JOB_STATE = r"job\.state\.[a-z-]+"
_EXCHANGES = rf"{re.escape(EVENTS_EXCHANGE)}|{re.escape(DEAD_LETTER_EXCHANGE)}"
# A pool's command queue (runner.<pool>) and its dead-letter queue, not the runners'
# shared cancel queue.
_POOL_QUEUES = r"runner\.(?!cancels(\.dlq)?$)[^.]+(\.dlq)?"


def _only(*alternatives: str) -> str:
    """A regex matching exactly one of ``alternatives`` (``^$``, i.e. nothing, if none)."""
    return "^(" + "|".join(alternatives) + ")$" if alternatives else "^$"


@dataclass(frozen=True)
class BrokerGrant:
    """One broker user's permissions on a virtual host."""

    role: str
    configure: str
    write: str
    read: str
    publishes: str
    """Routing keys it may publish on ``caesar.events`` (topic permission, write)."""
    binds: str
    """Binding keys its queues may use on ``caesar.events`` (topic permission, read)."""
    administrator: bool = False

    @property
    def user(self) -> str:
        return broker_user(self.role)


def broker_user(role: str) -> str:
    return f"caesar-{role}"


def _service(
    name: str,
    *,
    publishes: Iterable[str],
    binds: Iterable[str],
    extra_configure: Iterable[str] = (),
    extra_write: Iterable[str] = (),
    extra_read: Iterable[str] = (),
) -> BrokerGrant:
    own = rf"{name}\..*"
    return BrokerGrant(
        role=name,
        configure=_only(own, *extra_configure),
        # The dead-letter exchange: a queue declared with it needs write on it, and the
        # bus copies a refused message there with its reason.
        write=_only(_EXCHANGES, own, *extra_write),
        read=_only(_EXCHANGES, own, *extra_read),
        publishes=_only(*publishes),
        binds=_only(*binds),
    )


BROKER_GRANTS: dict[str, BrokerGrant] = {
    g.role: g
    for g in (
        _service(
            "api",
            publishes=[r"file\.uploaded", r"file\.deleted", r"job\.submitted", r"job\.cancel_requested"],
            binds=[r"job\.state\.\*", r"pool\.status"],
            # The admin routes: list dead letters (read any ``.dlq``) and replay them to
            # their queue through the default exchange. No live service queue is readable.
            extra_write=[r"amq\.default"],
            extra_read=[r"[a-z-]+(\.[a-z0-9-]+)*\.dlq"],
        ),
        _service(
            "scheduler",
            publishes=[_JOB_STATE, r"pool\.status"],
            binds=[
                r"job\.submitted",
                r"job\.cancel_requested",
                r"job\.state\.[a-z*-]+",
                r"runner\.heartbeat",
                r"quota\.changed",
            ],
            # It declares the pools' command queues (so no command is dropped before a
            # runner exists; declaring a queue with a dead-letter exchange needs read on
            # it) and sends commands to them through the default exchange.
            extra_configure=[_POOL_QUEUES],
            extra_write=[r"amq\.default", _POOL_QUEUES],
            extra_read=[_POOL_QUEUES],
        ),
        _service(
            "runner",
            publishes=[_JOB_STATE, r"runner\.heartbeat"],
            binds=[r"job\.cancel_requested"],
        ),
        _service(
            "monitor",
            publishes=[_JOB_STATE],
            binds=[
                r"job\.submitted",
                r"job\.state\.[a-z*-]+",
                r"job\.cancel_requested",
                r"runner\.heartbeat",
            ],
        ),
        _service(
            "accounting",
            publishes=[r"quota\.changed"],  # its verdicts on quotas, nothing else
            binds=[r"job\.submitted", r"job\.state\.[a-z*-]+", r"file\.uploaded", r"file\.deleted"],
        ),
        # An outside system following the events: its own ``sub.*`` queues (or
        # server-named ones) bound to caesar.events with any key; publishes nothing.
        BrokerGrant(
            role=SUBSCRIBER,
            configure=_only(r"sub\..*", r"amq\.gen-.*"),
            write=_only(r"sub\..*", r"amq\.gen-.*"),
            read=_only(re.escape(EVENTS_EXCHANGE), r"sub\..*", r"amq\.gen-.*"),
            publishes="^$",
            binds=".*",
        ),
        BrokerGrant(
            role=ADMIN, configure=".*", write=".*", read=".*", publishes=".*", binds=".*", administrator=True
        ),
    )
}


# ---------------------------------------------------------------- database


def database_user(role: str, prefix: str = "caesar") -> str:
    """The database user of a service (``caesar-api``); other prefixes get their own."""
    return f"{prefix}-{role}"


def database_roles(service: str, prefix: str = "caesar") -> list[dict[str, str]]:
    """readWrite on the service's own database (``<prefix>_<service>``) and nothing else."""
    return [{"role": "readWrite", "db": f"{prefix}_{service}"}]


ADMIN_DATABASE_ROLES = [{"role": "root", "db": "admin"}]


# ---------------------------------------------------------------- secrets

SECRET_NAMES = (
    *(f"BROKER_{role.upper()}_PASSWORD" for role in (ADMIN, *SERVICES, SUBSCRIBER)),
    *(f"DB_{role.upper()}_PASSWORD" for role in (ADMIN, *SERVICES)),
    "KEYCLOAK_ADMIN_PASSWORD",
    "KEYCLOAK_DB_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",  # Grafana's admin in docker compose (deploy/grafana)
)


def broker_secret(role: str) -> str:
    return f"BROKER_{role.upper()}_PASSWORD"


def database_secret(role: str) -> str:
    return f"DB_{role.upper()}_PASSWORD"


def new_secrets() -> dict[str, str]:
    """Fresh random credentials: 32 URL-safe characters (192 bits) each.

    URL-safe, so they go into ``amqp://`` and ``mongodb://`` URLs unquoted.
    """
    return {name: secrets.token_urlsafe(24) for name in SECRET_NAMES}


def format_env_file(values: Mapping[str, str], header: str) -> str:
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    return "\n".join([*lines, *(f"{k}={v}" for k, v in values.items())]) + "\n"


def parse_env_file(text: str) -> dict[str, str]:
    """``KEY=value`` lines; comments and blank lines skipped (no quoting: values are URL-safe)."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def write_private(path: Path, text: str) -> None:
    """Write a secrets file readable by its owner only, never briefly wider."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def missing_secrets(values: Mapping[str, str]) -> list[str]:
    return [name for name in SECRET_NAMES if not values.get(name)]


# ---------------------------------------------------------------- broker definitions


def rabbit_password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = salt if salt is not None else os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def vhost_definitions(vhost: str, roles: Iterable[str] | None = None) -> dict[str, Any]:
    """A virtual host with the shared exchanges and every role's permissions on it.

    No users: they are broker-wide (:func:`user_definitions`). Imported with
    ``rabbitmqctl import_definitions``, or loaded at boot by Compose's broker.
    """
    grants = [BROKER_GRANTS[r] for r in (roles if roles is not None else BROKER_GRANTS)]
    exchange = {"vhost": vhost, "durable": True, "auto_delete": False, "internal": False, "arguments": {}}
    return {
        "vhosts": [{"name": vhost}],
        "exchanges": [
            {**exchange, "name": EVENTS_EXCHANGE, "type": "topic"},
            {**exchange, "name": DEAD_LETTER_EXCHANGE, "type": "direct"},
        ],
        "permissions": [
            {"user": g.user, "vhost": vhost, "configure": g.configure, "write": g.write, "read": g.read}
            for g in grants
        ],
        "topic_permissions": [
            {
                "user": g.user,
                "vhost": vhost,
                "exchange": EVENTS_EXCHANGE,
                "write": g.publishes,
                "read": g.binds,
            }
            for g in grants
            if not g.administrator
        ],
    }


def user_definitions(values: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "name": g.user,
            "password_hash": rabbit_password_hash(values[broker_secret(g.role)]),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": ["administrator"] if g.administrator else [],
        }
        for g in BROKER_GRANTS.values()
    ]


def broker_definitions(values: Mapping[str, str], vhost: str = "/") -> dict[str, Any]:
    """Users, the virtual host, its exchanges and every permission: a whole broker setup."""
    return {"users": user_definitions(values), **vhost_definitions(vhost)}
