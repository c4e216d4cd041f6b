"""The local infrastructure as tests and benchmarks use it.

``scripts/infra.sh`` runs the broker and the database with generated credentials
(``$CAESAR_RUN_DIR/secrets.env``). Tests and benchmarks connect as the administrators,
and give every stack they start what a deployment has: a virtual host with the shared
exchanges and each service user's permissions (:class:`Vhost`), and database users that
may write their own service's database only (:func:`database_users`). So an end-to-end
test also proves the services work with nothing more than their own privileges.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from pymongo import MongoClient

from caesar_common import access

REPO = Path(__file__).resolve().parents[4]
INFRA = REPO / "scripts" / "infra.sh"


def run_dir() -> Path:
    return Path(os.environ.get("CAESAR_RUN_DIR") or REPO / ".run")


def dev_secrets() -> dict[str, str]:
    """The local stack's credentials (made by ``scripts/infra.sh start``)."""
    path = run_dir() / "secrets.env"
    if not path.exists():
        raise RuntimeError(f"no credentials at {path}: start the infrastructure with scripts/infra.sh start")
    return access.parse_env_file(path.read_text())


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def admin_amqp_url() -> str:
    """The broker administrator's URL (``CAESAR_AMQP_URL`` when the caller set it)."""
    if url := os.environ.get("CAESAR_AMQP_URL"):
        return url
    password = dev_secrets()[access.broker_secret(access.ADMIN)]
    user = access.broker_user(access.ADMIN)
    return f"amqp://{user}:{password}@127.0.0.1:{_port('CAESAR_RABBITMQ_PORT', 5672)}/"


def admin_mongo_url() -> str:
    """The database administrator's URL (``CAESAR_MONGO_URL`` when the caller set it)."""
    if url := os.environ.get("CAESAR_MONGO_URL"):
        return url
    password = dev_secrets()[access.database_secret(access.ADMIN)]
    user = access.database_user(access.ADMIN)
    port = _port("CAESAR_MONGO_PORT", 27017)
    return f"mongodb://{user}:{password}@127.0.0.1:{port}/?authSource=admin&retryWrites=false"


def with_credentials(
    url: str, user: str, password: str, *, path: str | None = None, query: str | None = None
) -> str:
    """``url`` with another user (and optionally another path or query)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            parts.path if path is None else path,
            parts.query if query is None else query,
            "",
        )
    )


def url_with_vhost(url: str, vhost: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    """Run rabbitmqctl against the project's broker node (through the infra script)."""
    result = subprocess.run(
        [str(INFRA), "ctl", "-q", *args], check=True, capture_output=True, text=True, timeout=timeout
    )
    return result.stdout


def import_definitions(definitions: dict[str, Any]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="caesar-defs-") as f:
        json.dump(definitions, f)
        f.flush()
        rabbitmqctl("import_definitions", f.name)


class Vhost:
    """A throw-away virtual host set up as a deployment's: exchanges and every user's grants.

    One ``import_definitions`` call makes it all (half the broker round trips of adding
    the vhost and setting permissions one by one).
    """

    def __init__(self, label: str = "test") -> None:
        self.name = f"{label}-{uuid.uuid4().hex[:10]}"
        import_definitions(access.vhost_definitions(self.name))
        self.url = url_with_vhost(admin_amqp_url(), self.name)

    def url_for(self, role: str) -> str:
        """The URL of a service's (or the subscriber's) own broker user on this vhost."""
        password = dev_secrets()[access.broker_secret(role)]
        return with_credentials(self.url, access.broker_user(role), password)

    def queue_depths(self) -> dict[str, int]:
        out = rabbitmqctl("list_queues", "-p", self.name, "--no-table-headers", "name", "messages")
        depths = {}
        for line in out.splitlines():
            if line.strip():
                name, count = line.split()
                depths[name] = int(count)
        return depths

    def delete(self) -> None:
        rabbitmqctl("delete_vhost", self.name)


@contextmanager
def database_users(prefix: str, admin_url: str | None = None) -> Iterator[dict[str, str]]:
    """One user per service with readWrite on ``<prefix>_<service>`` only; their URLs.

    The users are made for this prefix (its own random passwords) and dropped afterwards.
    """
    admin_url = admin_url or admin_mongo_url()
    client: MongoClient[dict[str, Any]] = MongoClient(admin_url, serverSelectionTimeoutMS=5000)
    made: list[str] = []
    try:
        urls = {}
        for service in access.SERVICES:
            user, password = access.database_user(service, prefix), secrets.token_urlsafe(18)
            client.admin.command(
                "createUser", user, pwd=password, roles=access.database_roles(service, prefix)
            )
            made.append(user)
            urls[service] = with_credentials(admin_url, user, password)
        yield urls
    finally:
        for user in made:
            client.admin.command("dropUser", user)
        client.close()


@contextmanager
def service_users(
    vhost: Vhost, prefix: str, mongo_url: str | None = None
) -> Iterator[dict[str, tuple[str, str]]]:
    """Per service, its own broker URL on ``vhost`` and its own database user's URL (made
    for ``prefix``, dropped afterwards): what a :class:`~caesar_testkit.devstack.Stack`
    takes as ``service_urls``, so a test or benchmark stack runs as a deployment does."""
    with database_users(prefix, mongo_url) as database_urls:
        yield {name: (vhost.url_for(name), url) for name, url in database_urls.items()}


def drop_databases(prefix: str, mongo_url: str | None = None) -> list[str]:
    """Drop every database of a stack or test (``<prefix>_<service>``); their names."""
    client: MongoClient[dict[str, Any]] = MongoClient(
        mongo_url or admin_mongo_url(), serverSelectionTimeoutMS=5000
    )
    dropped = []
    try:
        for name in client.list_database_names():
            if name.startswith(prefix + "_"):
                client.drop_database(name)
                dropped.append(name)
    finally:
        client.close()
    return dropped
