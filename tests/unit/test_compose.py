"""Static checks of the Docker Compose deployment.

``docker-compose.yml``, ``deploy/Dockerfile``, ``deploy/prometheus/prometheus.yml``, the
Grafana provisioning, the broker and database setup and the Keycloak realms must agree with
each other and with the code: targets that exist, modules that exist, ``CAESAR_*``
variables that the services' settings classes really read, ports that match between
settings, healthchecks, published ports and scrape targets.

And the deployment keeps no secret of its own (issue 12, "Secrets, not defaults"): every
credential is a ``${VAR:?...}`` reference to a name ``make secrets`` writes into ``.env``
(``caesar_common.access.SECRET_NAMES``), never a literal; each service connects to the
broker and the database as its own user; only the api is published on every interface,
every other published port is bound to 127.0.0.1; Keycloak runs in production mode; the
compose realm has no users, brute-force protection on and no password grant, and the
development realm (``scripts/keycloak.sh``, the tests) is the only one with users.

No Docker engine is needed; ``docker compose config`` runs only where the compose plugin
exists.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from caesar_common import access
from caesar_common.settings import ServiceSettings
from tests.auth_support import PASSWORDS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
KEYCLOAK_DIR = ROOT / "deploy" / "keycloak"
COMPOSE_REALM = KEYCLOAK_DIR / "caesar-realm.json"
DEV_REALM = KEYCLOAK_DIR / "caesar-realm-dev.json"
KEYCLOAK_SCRIPT = ROOT / "scripts" / "keycloak.sh"
RABBITMQ_CONF = ROOT / "deploy" / "rabbitmq" / "20-caesar.conf"
MONGO_INIT = ROOT / "deploy" / "mongodb" / "init-users.js"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
# RabbitMQ's rabbitmq_prometheus plugin (enabled in the official image): per-queue series.
RABBITMQ_EXPORTER = ("rabbitmq", 15692)
# Files compose mounts that `make secrets` generates (gitignored, absent from a checkout).
GENERATED = {"./deploy/rabbitmq/definitions.json"}

SERVICES = {"api": 8080, "scheduler": 8081, "runner": 8082, "monitor": 8083, "accounting": 8084}
INFRA = ("mongodb", "rabbitmq", "keycloak", "keycloak-db", "jaeger", "prometheus", "grafana")
# The one service published on every interface; any other published port is on loopback.
PUBLIC_SERVICE = "api"
LOOPBACK = "127.0.0.1"
DATA_ROOT = "/var/lib/caesar/data"
JOBS_ROOT = "/var/lib/caesar/jobs"
# Services that read or write job inputs and outputs share these named volumes.
SHARED_VOLUMES = {"caesar-data": DATA_ROOT, "caesar-jobs": JOBS_ROOT}
FILE_SERVICES = ("api", "runner")

COMMON_ENV = {
    "CAESAR_HTTP_HOST": "0.0.0.0",
    "CAESAR_DATA_ROOT": DATA_ROOT,
    "CAESAR_JOBS_ROOT": JOBS_ROOT,
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318",
}
API_AUTH_ENV = {
    "CAESAR_AUTH_ENABLED": "true",
    "CAESAR_KEYCLOAK_URL": "http://keycloak:8180",
    "CAESAR_KEYCLOAK_REALM": "caesar",
    "CAESAR_KEYCLOAK_AUDIENCE": "caesar-api",
}
# CAESAR_* variables compose passes to the api that ApiSettings does not define yet (none:
# every CAESAR_* variable must be a settings field; add a name here only while it lands).
PENDING_API_SETTINGS: frozenset[str] = frozenset()

# A stand-in .env: what `make secrets` would write, with recognisable values.
FAKE_SECRETS = {name: f"{name.lower().replace('_', '-')}-x" for name in access.SECRET_NAMES}


def secret_ref(name: str) -> str:
    """The compose reference to a secret, exactly as docker-compose.yml spells it."""
    return "${" + name + ":?run make secrets}"


def amqp_url(service: str) -> str:
    user, secret = access.broker_user(service), access.broker_secret(service)
    return f"amqp://{user}:{secret_ref(secret)}@rabbitmq:5672/"


def mongo_url(service: str) -> str:
    user, secret = access.database_user(service), access.database_secret(service)
    return f"mongodb://{user}:{secret_ref(secret)}@mongodb:27017/?authSource=admin"


FROM_RE = re.compile(r"^FROM\s+(?:--\S+\s+)*(?P<image>\S+)(?:\s+AS\s+(?P<name>\S+))?\s*$", re.I)
READYZ_RE = re.compile(r"https?://(?:127\.0\.0\.1|localhost):(?P<port>\d+)/readyz")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = COMPOSE_FILE.read_text()
    data = yaml.safe_load(text)
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever compose syntax it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {key: value for key, value in pairs}
    return {key: "" if value is None else str(value) for key, value in env.items()}


def published_ports(service: dict[str, Any]) -> list[tuple[str | None, str | None, int]]:
    """(host address or None, host port or None, container port) of each ``ports`` entry.

    Short syntax ``[[IP:]HOST:]CONTAINER[/PROTOCOL]`` (IPv6 in brackets) or the long one.
    A None address means every interface; a None host port, a random one.
    """
    result: list[tuple[str | None, str | None, int]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            result.append(
                (
                    entry.get("host_ip"),
                    None if published in (None, "") else str(published),
                    int(entry["target"]),
                )
            )
            continue
        spec = str(entry).split("/", 1)[0]
        ip: str | None = None
        if spec.startswith("["):
            ip, _, spec = spec[1:].partition("]:")
        parts = spec.split(":")
        if len(parts) == 3:
            ip, parts = parts[0], parts[1:]
        assert len(parts) in (1, 2), f"unreadable port {entry!r}"
        host_port = parts[0] if len(parts) == 2 and parts[0] else None
        result.append((ip or None, host_port, int(parts[-1])))
    return result


def port_mappings(service: dict[str, Any]) -> list[tuple[str | None, int]]:
    """(host port or None, container port) of each entry of ``ports``."""
    return [(host_port, container) for _ip, host_port, container in published_ports(service)]


def volume_mounts(service: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(source, target) of each entry of ``volumes``; source None for anonymous ones."""
    mounts: list[tuple[str | None, str]] = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            mounts.append((entry.get("source"), entry["target"]))
            continue
        parts = str(entry).split(":")
        if len(parts) == 1:
            mounts.append((None, parts[0]))
        else:
            mounts.append((parts[0], parts[1]))
    return mounts


def is_named_volume(source: str) -> bool:
    return not source.startswith((".", "/", "~", "$"))


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return {name: spec or {} for name, spec in deps.items()}


def dockerfile_stages() -> list[tuple[str, str | None, list[str]]]:
    """(base image, stage name, instruction lines) of each stage of deploy/Dockerfile."""
    stages: list[tuple[str, str | None, list[str]]] = []
    logical = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    for raw in logical.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = FROM_RE.match(line)
        if match:
            stages.append((match["image"], match["name"], []))
        elif stages:
            stages[-1][2].append(line)
    return stages


def stage_chain(target: str) -> list[tuple[str, list[str]]]:
    """(name, instruction lines) of ``target`` and of the stages it is built FROM."""
    by_name = {name: (image, lines) for image, name, lines in dockerfile_stages() if name}
    chain: list[tuple[str, list[str]]] = []
    current = target
    while current in by_name and current not in {name for name, _ in chain}:
        image, lines = by_name[current]
        chain.append((current, lines))
        current = image
    return chain


def settings_class(name: str) -> type[ServiceSettings]:
    """The ServiceSettings subclass defined in ``caesar_<name>.settings``."""
    module = importlib.import_module(f"caesar_{name}.settings")
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, ServiceSettings)
        and obj is not ServiceSettings
        and obj.__module__ == module.__name__
    ]
    assert len(classes) == 1, f"caesar_{name}.settings defines {classes}, expected one class"
    return classes[0]


def env_names(cls: type[ServiceSettings]) -> set[str]:
    """The environment variables a settings class reads (pydantic-settings naming)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, info in cls.model_fields.items():
        names.add(f"{prefix}{field_name}".upper())
        if isinstance(info.validation_alias, str):
            names.add(info.validation_alias.upper())
        if info.alias:
            names.add(info.alias.upper())
    return names


def healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test")
    assert test, "no healthcheck"
    return test if isinstance(test, str) else " ".join(str(part) for part in test)


# Compose interpolation: $$ (a literal $), $NAME, ${NAME} and ${NAME<op><word>} with op one
# of :- - :? ? :+ +.
VAR_RE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
BRACED_RE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<word>.*))?", re.S)
REQUIRED_REF_RE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?(?P<message>[^}]+)\}")
# Words of a variable name that make it a credential (CAESAR_KEYCLOAK_URL is not one).
SECRET_WORDS = {"PASSWORD", "PASSWD", "PASS", "PWD", "SECRET", "TOKEN", "KEY", "CREDENTIALS"}
# user:password@ in a URL of any scheme.
# user:password@ in a URL of any scheme; a ${...} reference (which may hold spaces) is one
# unit of the password.
URL_CREDENTIALS_RE = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://(?P<user>[^\s:/@]+):(?P<password>(?:\$\{[^}]*\}|[^\s@/])*)@"
)
# --password/--pass/-password with its value, in one string ("--password=x", "--pass x").
PASSWORD_FLAG_RE = re.compile(r"(?:^|\s)(?P<flag>--?pass(?:word)?)[= ](?P<value>\$\{[^}]*\}|\S+)")
PASSWORD_FLAG = re.compile(r"--?pass(?:word)?")


def references(text: str) -> list[tuple[str, str, str]]:
    """(name, operator, word) of every variable reference in ``text`` ("" when absent)."""
    refs: list[tuple[str, str, str]] = []
    for match in VAR_RE.finditer(text):
        if match["escaped"]:
            continue
        if match["bare"]:
            refs.append((match["bare"], "", ""))
            continue
        braced = BRACED_RE.fullmatch(match["braced"])
        assert braced, f"unreadable reference ${{{match['braced']}}}"
        refs.append((braced["name"], braced["op"] or "", braced["word"] or ""))
    return refs


def interpolate(text: str, env: dict[str, str]) -> str:
    """``text`` as docker compose would see it with ``env`` as its .env."""

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["bare"]:
            return env.get(match["bare"], "")
        braced = BRACED_RE.fullmatch(match["braced"])
        assert braced, match[0]
        name, op, word = braced["name"], braced["op"] or "", braced["word"] or ""
        value, is_set = env.get(name), name in env
        present = bool(value) if op.startswith(":") else is_set
        if op.endswith("?") and not present:
            raise LookupError(f"{name}: {word}")
        if op.endswith("-") and not present:
            return word
        if op.endswith("+"):
            return word if present else ""
        return value or ""

    return VAR_RE.sub(one, text)


def is_secret_ref(value: str) -> bool:
    """Exactly one required reference (``${NAME:?message}``) and nothing else."""
    return REQUIRED_REF_RE.fullmatch(value) is not None


def is_secret_name(key: str) -> bool:
    words = key.upper().split("_")
    return words[-1] != "FILE" and bool(SECRET_WORDS & set(words))


def walk_strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(where, text) of every string value (and of every mapping key) under ``node``."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((f"{path}/{key}:key", str(key)))
            found.extend(walk_strings(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(walk_strings(value, f"{path}[{i}]"))
    elif node is not None:
        found.append((path, str(node)))
    return found


def string_lists(node: Any, path: str = "") -> list[tuple[str, list[str]]]:
    """(where, items) of every list of strings under ``node``: commands, healthchecks."""
    found: list[tuple[str, list[str]]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(string_lists(value, f"{path}/{key}"))
    elif isinstance(node, list):
        if all(isinstance(item, str) for item in node):
            found.append((path, node))
        for i, value in enumerate(node):
            found.extend(string_lists(value, f"{path}[{i}]"))
    return found


def literal_credentials(compose: dict[str, Any]) -> list[str]:
    """Every credential docker-compose.yml spells out instead of taking it from .env.

    Looked at: each service's environment (a credential-named variable must be one
    ``${NAME:?...}`` reference), every URL anywhere with a user and password (the password
    must be one such reference, and no URL logs in as the broker's default ``guest``),
    every ``--password``/``--pass`` on a command line, healthcheck or entrypoint, and
    ``${VAR:-default}`` style references (a default is a literal credential in waiting).
    """
    problems: list[str] = []
    for name, service in (compose.get("services") or {}).items():
        for key, value in environment(service).items():
            if is_secret_name(key) and not is_secret_ref(value):
                problems.append(f"{name}: {key} is not a ${{VAR:?...}} reference: {value!r}")
    for where, text in walk_strings(compose):
        for match in URL_CREDENTIALS_RE.finditer(text):
            if not is_secret_ref(match["password"]):
                problems.append(f"{where}: URL with a literal password {match[0]!r}")
            if match["user"] == "guest":
                problems.append(f"{where}: URL logs in as guest")
        for match in PASSWORD_FLAG_RE.finditer(text):
            if not is_secret_ref(match["value"]):
                problems.append(f"{where}: literal password on a command line {match[0].strip()!r}")
        for ref_name, op, _word in references(text):
            if op != ":?":
                problems.append(f"{where}: ${{{ref_name}{op}...}} may stand for a default")
    for where, items in string_lists(compose):
        for flag, value in zip(items, [*items[1:], ""], strict=True):
            if PASSWORD_FLAG.fullmatch(flag) and not is_secret_ref(value):
                problems.append(f"{where}: literal password on a command line {flag} {value!r}")
    return problems


def exposure_problems(compose: dict[str, Any]) -> list[str]:
    """Ports published past this host: any but the api's, or any off loopback."""
    problems: list[str] = []
    for name, service in (compose.get("services") or {}).items():
        if str(service.get("network_mode", "")).startswith("host"):
            problems.append(f"{name}: network_mode host publishes every port it listens on")
        for ip, host_port, container in published_ports(service):
            if name == PUBLIC_SERVICE:
                continue
            if ip != LOOPBACK:
                where = "every interface" if ip in (None, "0.0.0.0", "::") else ip
                problems.append(f"{name}: port {container} published on {where} (host port {host_port})")
    return problems


def realm_clients(realm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {client["clientId"]: client for client in realm.get("clients", [])}


def audiences(client: dict[str, Any]) -> list[str]:
    return [
        mapper["config"].get("included.client.audience")
        for mapper in client.get("protocolMappers", [])
        if mapper["protocolMapper"] == "oidc-audience-mapper"
    ]


def issues_tokens_to_users(client: dict[str, Any]) -> bool:
    attributes = client.get("attributes", {})
    return bool(
        client.get("standardFlowEnabled", True)
        or client.get("implicitFlowEnabled")
        or client.get("directAccessGrantsEnabled")
        or attributes.get("oauth2.device.authorization.grant.enabled") == "true"
    )


# --------------------------------------------------------------------------- compose file


def test_compose_file_uses_the_compose_spec(compose: dict[str, Any]) -> None:
    assert "version" not in compose, "the Compose spec has no top-level version key"
    assert set(SERVICES) | set(INFRA) <= set(compose["services"])


def test_every_service_has_a_pinned_image_or_a_build(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        image = service.get("image")
        if image is None:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: image {image!r} has no tag"
        assert "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} is not pinned"


def test_depends_on_targets_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for target, spec in depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name}: {target} has no healthcheck"


def test_referenced_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for source, _target in volume_mounts(service):
            if source is None:
                continue
            if is_named_volume(source):
                assert source in declared, f"{name}: volume {source} is not declared top-level"
            elif source in GENERATED:
                ignored = (ROOT / ".gitignore").read_text().splitlines()
                assert source.removeprefix("./") in ignored, f"generated {source} is not gitignored"
            else:
                assert (ROOT / source).exists(), f"{name}: bind mount {source} does not exist"


def test_infrastructure(services: dict[str, Any]) -> None:
    mongodb, rabbitmq = services["mongodb"], services["rabbitmq"]
    assert mongodb["image"].startswith("mongo:7")
    assert any(is_named_volume(src or ".") for src, _ in volume_mounts(mongodb))
    assert "healthcheck" in mongodb
    assert rabbitmq["image"].startswith("rabbitmq:3.13-management")
    assert "healthcheck" in rabbitmq
    # AMQP (event subscribers) and the management UI, on this host only.
    assert set(published_ports(rabbitmq)) == {(LOOPBACK, "5672", 5672), (LOOPBACK, "15672", 15672)}
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith(("jaegertracing/jaeger:2.", "jaegertracing/all-in-one:"))
    # The UI on this host only; the services' OTLP export stays inside the network.
    assert published_ports(jaeger) == [(LOOPBACK, "16686", 16686)]
    assert environment(services["api"])["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert published_ports(services["prometheus"]) == [(LOOPBACK, "9090", 9090)]
    assert published_ports(services["grafana"]) == [(LOOPBACK, "3000", 3000)]


# --------------------------------------------------------------------------- caesar services


@pytest.mark.parametrize("name", SERVICES)
def test_service_builds_its_own_target(name: str, services: dict[str, Any]) -> None:
    build = services[name]["build"]
    assert isinstance(build, dict), f"{name}: build needs a dockerfile and a target"
    context = ROOT / build.get("context", ".")
    assert context.resolve() == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    targets = {stage for _, stage, _ in dockerfile_stages() if stage}
    assert build["target"] == name
    assert build["target"] in targets, f"deploy/Dockerfile has no stage {build['target']}"


@pytest.mark.parametrize("name", SERVICES)
def test_service_runs_its_module(name: str, services: dict[str, Any]) -> None:
    assert services[name]["command"] == ["python", "-m", f"caesar_{name}"]
    main = ROOT / "services" / name / "src" / f"caesar_{name}" / "__main__.py"
    assert main.is_file(), f"{main.relative_to(ROOT)} does not exist"


@pytest.mark.parametrize("name", SERVICES)
def test_service_environment(name: str, services: dict[str, Any]) -> None:
    env = environment(services[name])
    for key, value in COMMON_ENV.items():
        assert env.get(key) == value, f"{name}: {key}"
    # Its own broker and database user, with its own password from .env.
    assert env["CAESAR_AMQP_URL"] == amqp_url(name)
    assert env["CAESAR_MONGO_URL"] == mongo_url(name)
    assert env["CAESAR_HTTP_PORT"] == str(SERVICES[name])
    assert env["OTEL_SERVICE_NAME"] == f"caesar-{name}"
    if name == "api":
        for key, value in API_AUTH_ENV.items():
            assert env.get(key) == value, f"api: {key}"


@pytest.mark.parametrize("name", SERVICES)
def test_caesar_variables_are_settings_fields(
    name: str, services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(name)
    known = env_names(cls)
    env = environment(services[name])
    allowed_pending = PENDING_API_SETTINGS if name == "api" else frozenset()
    unknown = {
        key
        for key in env
        if key.startswith("CAESAR_") and key.upper() not in known and key not in allowed_pending
    }
    assert not unknown, f"{name}: {cls.__name__} has no field for {sorted(unknown)}"

    # The values must also validate, and mean what the rest of compose assumes.
    # Compose interpolates ${VAR} from .env first: use a stand-in .env.
    for key in [key for key in os.environ if key.startswith("CAESAR_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, interpolate(value, FAKE_SECRETS))
    settings = cls()
    assert settings.http_port == SERVICES[name]
    assert settings.http_host == "0.0.0.0"
    assert str(settings.data_root) == DATA_ROOT
    assert str(settings.jobs_root) == JOBS_ROOT
    broker_password = FAKE_SECRETS[access.broker_secret(name)]
    database_password = FAKE_SECRETS[access.database_secret(name)]
    assert settings.amqp_url == f"amqp://caesar-{name}:{broker_password}@rabbitmq:5672/"
    assert (
        settings.mongo_url == f"mongodb://caesar-{name}:{database_password}@mongodb:27017/?authSource=admin"
    )
    assert settings.database_name(name) == access.database_roles(name)[0]["db"]


def test_settings_default_ports_match_compose() -> None:
    for name, port in SERVICES.items():
        assert settings_class(name).model_fields["http_port"].default == port, name


@pytest.mark.parametrize("name", SERVICES)
def test_ports_agree(name: str, services: dict[str, Any]) -> None:
    service = services[name]
    port = int(environment(service)["CAESAR_HTTP_PORT"])
    health = healthcheck_text(service)
    assert "curl" not in health, "slim images have no curl"
    assert "wget" not in health, "slim images have no wget"
    assert "urllib" in health
    assert [int(m["port"]) for m in READYZ_RE.finditer(health)] == [port]
    for _host, container in port_mappings(service):
        assert container == port, f"{name}: publishes {container}, listens on {port}"
    for exposed in service.get("expose") or []:
        assert int(str(exposed).split("/", 1)[0]) == port


@pytest.mark.parametrize("name", SERVICES)
def test_service_waits_for_healthy_infrastructure(name: str, services: dict[str, Any]) -> None:
    deps = depends_on(services[name])
    for infra in ("mongodb", "rabbitmq"):
        assert deps.get(infra, {}).get("condition") == "service_healthy", f"{name}: {infra}"


def test_api_is_published_and_runner_is_scalable(services: dict[str, Any]) -> None:
    assert published_ports(services["api"]) == [(None, "8080", 8080)]
    runner = services["runner"]
    assert "container_name" not in runner, "a fixed container name prevents --scale"
    assert all(host is None for host, _ in port_mappings(runner)), "a fixed host port too"


def test_file_services_share_data_and_jobs_volumes(services: dict[str, Any]) -> None:
    for name in FILE_SERVICES:
        service = services[name]
        env = environment(service)
        mounts = dict(volume_mounts(service))
        mounted = {target: source for source, target in mounts.items()}
        assert mounted.get(env["CAESAR_DATA_ROOT"]) == "caesar-data", name
        assert mounted.get(env["CAESAR_JOBS_ROOT"]) == "caesar-jobs", name
        for volume, path in SHARED_VOLUMES.items():
            assert mounts.get(volume) == path, f"{name}: {volume}"


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_installs_each_service_from_the_lockfile() -> None:
    stages = dockerfile_stages()
    names = [name for _, name, _ in stages if name]
    assert len(names) == len(set(names)), "duplicate stage names"
    assert "base" in names
    runs = [line for _, _, lines in stages for line in lines if line.startswith("RUN")]
    for name in SERVICES:
        installs = [
            run
            for run in runs
            if "uv sync" in run
            and re.search(rf"--package\s+caesar-{name}(\s|$)", run)
            and "--no-install-workspace" not in run
        ]
        assert installs, f"no uv sync of caesar-{name}"
        for run in installs:
            assert "--frozen" in run, run
            assert "--no-dev" in run, run


@pytest.mark.parametrize("name", SERVICES)
def test_service_target_runs_as_non_root(name: str) -> None:
    chain = stage_chain(name)
    assert chain, f"no stage {name}"
    users = [
        line.split(None, 1)[1].strip()
        for _, lines in chain
        for line in reversed(lines)
        if line.upper().startswith("USER ")
    ]
    assert users, f"{name} never sets USER"
    assert users[0].split(":", 1)[0] not in {"root", "0"}, f"{name} runs as {users[0]}"
    own = chain[0][1]
    assert [line for line in own if line.startswith("CMD")] == [f'CMD ["python", "-m", "caesar_{name}"]']
    # The installed environment comes from a stage built on "base" (uv and uv.lock).
    sources = [
        word.split("=", 1)[1]
        for line in own
        if line.startswith("COPY")
        for word in line.split()
        if word.startswith("--from=")
    ]
    assert sources, f"{name} copies no installed environment"
    for source in sources:
        assert "base" in {stage for stage, _ in stage_chain(source)}, f"{source} is not on base"


def test_runner_target_has_setpriv_and_prlimit() -> None:
    runner = " ".join(line for _, lines in stage_chain("runner") for line in lines)
    assert "setpriv" in runner
    assert "prlimit" in runner
    assert "util-linux" in runner


def test_docker_build_context_holds_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", ".dockerignore should start by excluding everything"
    included = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    assert not any(p in {".venv", ".git", ".run"} for p in included)
    for _, _, lines in dockerfile_stages():
        for line in lines:
            words = line.split()
            if words[0] != "COPY" or any(w.startswith("--from") for w in words):
                continue
            sources = [w for w in words[1:-1] if not w.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such path"
                assert any(source == p or source.startswith(p + "/") for p in included), (
                    f"COPY {source} is excluded by .dockerignore"
                )


# --------------------------------------------------------------------------- Prometheus


def test_prometheus_scrapes_every_service(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    config_paths = [
        source
        for source, target in volume_mounts(prometheus)
        if source and target == "/etc/prometheus/prometheus.yml"
    ]
    assert config_paths == ["./deploy/prometheus/prometheus.yml"]
    config = yaml.safe_load((ROOT / config_paths[0]).read_text())
    scraped: set[tuple[str, int]] = set()
    for job in config["scrape_configs"]:
        targets = {
            (host, int(port))
            for static in job.get("static_configs") or []
            for host, _, port in (target.rpartition(":") for target in static["targets"])
        }
        targets.update(
            (host, int(dns["port"])) for dns in job.get("dns_sd_configs") or [] for host in dns["names"]
        )
        if targets == {RABBITMQ_EXPORTER}:
            # Per-queue depths: the plugin's /metrics sums over every queue.
            assert job["job_name"] == "rabbitmq"
            assert job["metrics_path"] == "/metrics/detailed"
            assert set(job["params"]["family"]) >= {"queue_coarse_metrics", "queue_consumer_count"}
        else:
            assert job.get("metrics_path", "/metrics") == "/metrics"
        scraped |= targets
    expected = {(name, int(environment(services[name])["CAESAR_HTTP_PORT"])) for name in SERVICES}
    assert expected <= scraped
    assert RABBITMQ_EXPORTER in scraped, "RabbitMQ's queue metrics are not scraped"
    service_targets = {(host, port) for host, port in scraped if host in services} - {RABBITMQ_EXPORTER}
    assert service_targets == expected, f"unexpected targets {service_targets - expected}"
    # The dashboards' queries and the alert rules name the scrape jobs caesar-<service>.
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {f"caesar-{name}" for name in SERVICES} <= jobs
    # The runner scales: its replicas are found through DNS, not one fixed address.
    runner_jobs = [
        job
        for job in config["scrape_configs"]
        if any("runner" in dns["names"] for dns in job.get("dns_sd_configs") or [])
    ]
    assert runner_jobs, "runner replicas are not discovered"


def mounted_files(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts."""
    return {
        target: source for source, target in volume_mounts(service) if source and not is_named_volume(source)
    }


def test_prometheus_loads_the_alert_rules(services: dict[str, Any]) -> None:
    mounts = mounted_files(services["prometheus"])
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert mounts["/etc/prometheus/alerts.yml"] == "./deploy/prometheus/alerts.yml"


def test_grafana_is_provisioned_from_deploy_grafana(services: dict[str, Any]) -> None:
    """Grafana gets the Prometheus data source (the uid every panel names) and the
    generated dashboards, read-only; its admin password comes from .env."""
    grafana = services["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    env = environment(grafana)
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == secret_ref("GRAFANA_ADMIN_PASSWORD")
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    mounts = mounted_files(grafana)
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert all(str(entry).endswith(":ro") for entry in grafana["volumes"] if str(entry).startswith("./")), (
        "provisioning and dashboards are read-only"
    )
    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    dashboards = [
        json.loads(path.read_text()) for path in sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
    ]
    assert len(dashboards) == 4
    used_uids = {
        str(panel["datasource"]["uid"])
        for board in dashboards
        for panel in board["panels"]
        if "datasource" in panel
    }
    assert used_uids == {datasource["uid"]}
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "caesar.yml").read_text())
    (provider,) = providers["providers"]
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    assert env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].startswith(provider["options"]["path"] + "/")
    assert depends_on(grafana)["prometheus"]


# --------------------------------------------------------------------------- credentials


def test_no_literal_credentials(compose: dict[str, Any]) -> None:
    problems = literal_credentials(compose)
    assert not problems, "\n".join(problems)


def test_the_credential_check_sees_literals() -> None:
    """The check above would catch each kind of literal: it cannot pass by seeing nothing."""
    hostile = {
        "services": {
            "a": {"environment": {"POSTGRES_PASSWORD": "hunter2", "API_TOKEN": "t0ken"}},
            "b": {"environment": ["CAESAR_AMQP_URL=amqp://guest:guest@rabbitmq:5672/"]},
            "c": {"environment": {"CAESAR_MONGO_URL": "mongodb://u:${DB_API_PASSWORD:-default}@mongodb/"}},
            "d": {"command": ["mongod", "--password", "s3cret"]},
            "e": {"healthcheck": {"test": ["CMD-SHELL", "mongosh --password s3cret"]}},
            "f": {"environment": {"KC_BOOTSTRAP_ADMIN_PASSWORD": "${KEYCLOAK_ADMIN_PASSWORD}"}},
            "g": {"environment": {"SOME_SECRET": "prefix-${KEYCLOAK_ADMIN_PASSWORD:?x}"}},
        }
    }
    flagged = {
        problem.split(":", 1)[0].lstrip("/").removeprefix("services/").split("/")[0]
        for problem in literal_credentials(hostile)
    }
    assert flagged == {"a", "b", "c", "d", "e", "f", "g"}
    fine = {
        "services": {
            "a": {
                "environment": {
                    "POSTGRES_PASSWORD": secret_ref("KEYCLOAK_DB_PASSWORD"),
                    "CAESAR_KEYCLOAK_URL": "http://keycloak:8180",
                    "CAESAR_AMQP_URL": amqp_url("api"),
                    "PASSWORD_FILE": "/run/secrets/pw",
                },
                "command": ["run", "--password", secret_ref("KEYCLOAK_DB_PASSWORD")],
            }
        }
    }
    assert literal_credentials(fine) == []


def test_every_variable_is_a_generated_secret(compose: dict[str, Any]) -> None:
    """Compose takes only what `make secrets` writes, and refuses to start without it."""
    used: set[str] = set()
    for where, text in walk_strings(compose):
        for name, op, word in references(text):
            assert op == ":?", f"{where}: ${{{name}{op}{word}}} is not ${{{name}:?message}}"
            assert word.strip(), f"{where}: ${{{name}:?}} has no message"
            assert name in access.SECRET_NAMES, f"{where}: {name} is not one scripts/credentials.py writes"
            used.add(name)
    needed = {
        *(access.broker_secret(s) for s in access.SERVICES),
        *(access.database_secret(s) for s in (access.ADMIN, *access.SERVICES)),
        "KEYCLOAK_ADMIN_PASSWORD",
        "KEYCLOAK_DB_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    }
    assert needed <= used, f"never used: {sorted(needed - used)}"
    # The broker's own users (administrator, subscriber) exist only as hashes in the
    # generated definitions: no container needs their passwords.
    assert used <= set(access.SECRET_NAMES)


def test_compose_refuses_to_start_without_the_secrets(services: dict[str, Any]) -> None:
    checked = 0
    for service in services.values():
        for value in environment(service).values():
            interpolate(value, FAKE_SECRETS)  # everything is there: fine
            if references(value):
                with pytest.raises(LookupError, match="run make secrets"):
                    interpolate(value, {})
                with pytest.raises(LookupError):
                    interpolate(value, dict.fromkeys(FAKE_SECRETS, ""))  # empty is missing too
                checked += 1
    assert checked >= 2 * len(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_uses_only_its_own_credentials(name: str, services: dict[str, Any]) -> None:
    refs = {ref for value in environment(services[name]).values() for ref, _, _ in references(value)}
    assert refs == {access.broker_secret(name), access.database_secret(name)}


# --------------------------------------------------------------------------- published ports


def test_only_the_api_is_published_past_this_host(compose: dict[str, Any]) -> None:
    problems = exposure_problems(compose)
    assert not problems, "\n".join(problems)
    published = {name for name, service in compose["services"].items() if published_ports(service)}
    public = {
        name
        for name, service in compose["services"].items()
        if any(ip != LOOPBACK for ip, _, _ in published_ports(service))
    }
    assert public == {PUBLIC_SERVICE}
    assert published == {PUBLIC_SERVICE, "rabbitmq", "keycloak", "jaeger", "prometheus", "grafana"}


def test_databases_are_not_published(services: dict[str, Any]) -> None:
    for name in ("mongodb", "keycloak-db"):
        assert not published_ports(services[name]), f"{name} is reachable from the host"


def test_the_exposure_check_sees_published_ports() -> None:
    hostile = {
        "services": {
            "api": {"ports": ["8080:8080"]},
            "mongodb": {"ports": ["27017:27017"]},
            "rabbitmq": {"ports": ["0.0.0.0:5672:5672", "127.0.0.1:15672:15672"]},
            "jaeger": {"ports": [{"target": 16686, "published": 16686}]},
            "prometheus": {"ports": ["9090"]},
            "keycloak-db": {"network_mode": "host"},
            "keycloak": {"ports": ["[::]:8180:8180"]},
        }
    }
    flagged = {problem.split(":", 1)[0] for problem in exposure_problems(hostile)}
    assert flagged == {"mongodb", "rabbitmq", "jaeger", "prometheus", "keycloak-db", "keycloak"}
    loopback = {
        "services": {"x": {"ports": ["127.0.0.1:1:1", {"target": 2, "published": 2, "host_ip": LOOPBACK}]}}
    }
    assert exposure_problems(loopback) == []


# --------------------------------------------------------------------------- broker and database users


def test_broker_loads_the_generated_definitions(services: dict[str, Any]) -> None:
    rabbitmq = services["rabbitmq"]
    mounts = {target: source for source, target in volume_mounts(rabbitmq)}
    conf = RABBITMQ_CONF.read_text()
    settings = dict(
        line.split("=", 1)
        for line in (raw.strip() for raw in conf.splitlines())
        if line and not line.startswith("#")
    )
    settings = {key.strip(): value.strip() for key, value in settings.items()}
    assert mounts["/etc/rabbitmq/conf.d/20-caesar.conf"] == "./deploy/rabbitmq/20-caesar.conf"
    assert mounts[settings["load_definitions"]] == "./deploy/rabbitmq/definitions.json"
    # Missing (no make secrets), compose must stop, not mount an empty directory there.
    (definitions,) = [
        v for v in rabbitmq["volumes"] if isinstance(v, dict) and v["target"] == settings["load_definitions"]
    ]
    assert definitions["bind"]["create_host_path"] is False
    assert definitions["read_only"] is True
    assert "./deploy/rabbitmq/definitions.json" in GENERATED
    # Even a guest left in an old volume may only connect from inside the container.
    assert settings["loopback_users.guest"] == "true"
    # No RABBITMQ_DEFAULT_USER/PASS: the definitions' users are the only ones.
    assert not {key for key in environment(rabbitmq) if key.startswith("RABBITMQ_DEFAULT")}
    # What make secrets writes for it: every service's user, and no guest.
    users = {user["name"] for user in access.broker_definitions(FAKE_SECRETS)["users"]}
    assert "guest" not in users
    assert {access.broker_user(s) for s in access.SERVICES} <= users
    for name in SERVICES:
        url = interpolate(environment(services[name])["CAESAR_AMQP_URL"], FAKE_SECRETS)
        assert url.split("://", 1)[1].split(":", 1)[0] in users


def test_database_runs_with_auth_and_per_service_users(services: dict[str, Any]) -> None:
    mongodb = services["mongodb"]
    env = environment(mongodb)
    assert env["MONGO_INITDB_ROOT_USERNAME"] == access.database_user(access.ADMIN)
    assert env["MONGO_INITDB_ROOT_PASSWORD"] == secret_ref(access.database_secret(access.ADMIN))
    for service in access.SERVICES:
        secret = access.database_secret(service)
        assert env[secret] == secret_ref(secret)
    mounts = {target: source for source, target in volume_mounts(mongodb)}
    scripts = [t for t in mounts if t.startswith("/docker-entrypoint-initdb.d/")]
    assert [mounts[t] for t in scripts] == ["./deploy/mongodb/init-users.js"]
    assert scripts[0].endswith(".js")
    # The healthcheck logs in as a service user over the network, password from the
    # environment (not the command line): healthy means the users exist.
    health = healthcheck_text(mongodb)
    assert "process.env.DB_ACCOUNTING_PASSWORD" in health
    assert "caesar-accounting" in health


def test_database_init_script_agrees_with_access() -> None:
    """deploy/mongodb/init-users.js creates what caesar_common.access says, from the env."""
    script = MONGO_INIT.read_text()
    listed = re.search(r"const SERVICES = \[(?P<items>[^\]]*)\];", script)
    assert listed, "no SERVICES list"
    assert tuple(json.loads(f"[{listed['items']}]")) == access.SERVICES
    variable = re.search(r"const variable = `(?P<template>[^`]*)`;", script)
    user = re.search(r"user: `(?P<template>[^`]*)`", script)
    roles = re.search(r"roles: \[\{ role: \"(?P<role>\w+)\", db: `(?P<db>[^`]*)` \}\]", script)
    assert variable, "no DB_<SERVICE>_PASSWORD template"
    assert user, "no user template"
    assert roles, "no roles template"
    assert "process.env[variable]" in script
    assert "pwd: password" in script

    def render(template: str, service: str) -> str:
        return template.replace("${service.toUpperCase()}", service.upper()).replace("${service}", service)

    for service in access.SERVICES:
        assert render(variable["template"], service) == access.database_secret(service)
        assert render(user["template"], service) == access.database_user(service)
        assert [{"role": roles["role"], "db": render(roles["db"], service)}] == access.database_roles(service)
    assert not URL_CREDENTIALS_RE.search(script)


# --------------------------------------------------------------------------- Keycloak


def load_realm(path: Path) -> dict[str, Any]:
    realm: dict[str, Any] = json.loads(path.read_text())
    return realm


def test_keycloak_runs_in_production_mode(services: dict[str, Any]) -> None:
    keycloak = services["keycloak"]
    assert keycloak["image"].startswith("quay.io/keycloak/keycloak:26.")
    command = keycloak["command"]
    command = command.split() if isinstance(command, str) else command
    assert command[0] == "start", "start-dev is for development only"
    assert "--import-realm" in command
    assert not any("start-dev" in str(part) for part in command)
    env = environment(keycloak)
    assert env["KC_HTTP_ENABLED"] == "true"  # TLS is terminated by a proxy in front
    assert env["KC_HTTP_PORT"] == "8180"
    assert env["KC_HEALTH_ENABLED"] == "true"
    assert env["KC_BOOTSTRAP_ADMIN_USERNAME"] == "admin"
    assert env["KC_BOOTSTRAP_ADMIN_PASSWORD"] == secret_ref("KEYCLOAK_ADMIN_PASSWORD")
    # Its own Postgres, not the dev-file database.
    assert env["KC_DB"] == "postgres"
    database = services["keycloak-db"]
    assert database["image"] == "postgres:17"
    db_env = environment(database)
    assert env["KC_DB_URL"] == f"jdbc:postgresql://keycloak-db:5432/{db_env['POSTGRES_DB']}"
    assert env["KC_DB_USERNAME"] == db_env["POSTGRES_USER"]
    assert env["KC_DB_PASSWORD"] == db_env["POSTGRES_PASSWORD"] == secret_ref("KEYCLOAK_DB_PASSWORD")
    assert depends_on(keycloak)["keycloak-db"]["condition"] == "service_healthy"
    assert any(is_named_volume(src or ".") for src, _ in volume_mounts(database))
    # One issuer: the URL users reach (published on this host only) is the api's issuer.
    api = environment(services["api"])
    assert f"{env['KC_HOSTNAME']}/realms/{api['CAESAR_KEYCLOAK_REALM']}" == api["CAESAR_KEYCLOAK_ISSUER"]
    assert published_ports(keycloak) == [(LOOPBACK, "8180", 8180)]
    assert env["KC_HOSTNAME"] == "http://localhost:8180"
    assert api["CAESAR_KEYCLOAK_URL"] == "http://keycloak:8180"


def test_keycloak_imports_the_compose_realm(services: dict[str, Any]) -> None:
    realm_files = [
        source
        for source, target in volume_mounts(services["keycloak"])
        if source and target.startswith("/opt/keycloak/data/import/")
    ]
    assert realm_files == ["./deploy/keycloak/caesar-realm.json"]
    assert (ROOT / realm_files[0]).resolve() == COMPOSE_REALM


def check_realm_serves_the_api(realm: dict[str, Any], api_env: dict[str, str]) -> None:
    """What the api needs of tokens: its realm, the roles it reads, the audience."""
    assert realm["realm"] == api_env["CAESAR_KEYCLOAK_REALM"]
    assert realm["enabled"] is True
    assert realm["sslRequired"] in {"external", "all"}
    assert realm.get("registrationAllowed", False) is False
    assert {role["name"] for role in realm["roles"]["realm"]} >= {"user", "admin"}
    clients = realm_clients(realm)
    api = clients[api_env["CAESAR_KEYCLOAK_AUDIENCE"]]
    assert api["publicClient"] is False
    assert api.get("bearerOnly", False) is False
    assert not issues_tokens_to_users(api), "the api's own client signs no one in"
    assert not api.get("serviceAccountsEnabled", False)
    for client_id, client in clients.items():
        assert "secret" not in client, f"{client_id}: a client secret in the realm file"
        assert not client.get("implicitFlowEnabled", False), client_id
        if issues_tokens_to_users(client):
            assert client["publicClient"] is True, client_id
            assert audiences(client) == [api_env["CAESAR_KEYCLOAK_AUDIENCE"]], client_id
    cli = clients["caesar-cli"]
    assert cli["attributes"]["oauth2.device.authorization.grant.enabled"] == "true"
    assert cli["standardFlowEnabled"] is False
    web = clients["caesar-web"]
    assert web["standardFlowEnabled"] is True
    assert web["directAccessGrantsEnabled"] is False
    assert web["attributes"]["pkce.code.challenge.method"] == "S256"
    assert web["attributes"].get("oauth2.device.authorization.grant.enabled", "false") == "false"
    # Brute-force protection: a temporary lockout after a few failures (no permanent
    # lockout, which would let anyone lock a user out for good).
    assert realm["bruteForceProtected"] is True
    assert realm.get("permanentLockout", False) is False
    assert 1 <= realm["failureFactor"] <= 10
    assert realm["waitIncrementSeconds"] >= 30
    assert realm["maxFailureWaitSeconds"] >= realm["waitIncrementSeconds"]
    assert realm["minimumQuickLoginWaitSeconds"] > 0


def test_compose_realm(services: dict[str, Any]) -> None:
    realm = load_realm(COMPOSE_REALM)
    api_env = environment(services["api"])
    check_realm_serves_the_api(realm, api_env)
    # No users at all: people are created in the admin console, with their own passwords.
    assert not realm.get("users"), "the compose realm has users"
    keys = {where.rsplit("/", 1)[-1].removesuffix(":key") for where, _ in walk_strings(realm)}
    assert not keys & {"users", "credentials", "secret", "password", "value"}
    clients = realm_clients(realm)
    for client_id, client in clients.items():
        assert client.get("directAccessGrantsEnabled", False) is False, f"{client_id}: password grant"
    # The browser client comes back to the api only.
    api_url = "http://localhost:{}".format(published_ports(services["api"])[0][1])
    web = clients["caesar-web"]
    assert web["redirectUris"]
    assert all(uri.startswith(f"{api_url}/") for uri in web["redirectUris"])
    assert set(web["webOrigins"]) <= {api_url}
    assert all(
        uri.startswith(f"{api_url}/") for uri in web["attributes"]["post.logout.redirect.uris"].split("##")
    )
    assert "DEVELOPMENT" not in realm.get("displayName", "").upper()


def test_dev_realm_is_the_compose_realm_plus_known_users(services: dict[str, Any]) -> None:
    dev, compose_realm = load_realm(DEV_REALM), load_realm(COMPOSE_REALM)
    check_realm_serves_the_api(dev, environment(services["api"]))
    assert "DEVELOPMENT" in dev["displayName"].upper()
    # The tests and `scripts/keycloak.sh token` log in with a username and password.
    assert realm_clients(dev)["caesar-cli"]["directAccessGrantsEnabled"] is True
    # alice, bob (users) and carol (admin), with the passwords the tests use.
    users = {user["username"]: user for user in dev["users"]}
    assert set(users) == set(PASSWORDS)
    for name, user in users.items():
        assert user["credentials"] == [{"type": "password", "value": PASSWORDS[name], "temporary": False}]
        assert "user" in user["realmRoles"]
        # The realm's password policy (length(12) and notUsername) holds for them.
        assert len(PASSWORDS[name]) >= 12
        assert PASSWORDS[name] != name
    assert dev["passwordPolicy"] == "length(12) and notUsername"
    assert [name for name, user in users.items() if "admin" in user["realmRoles"]] == ["carol"]

    # Otherwise the same realm, so the tests prove what compose deploys.
    def shared(realm: dict[str, Any]) -> dict[str, Any]:
        rest = {k: v for k, v in realm.items() if k not in {"users", "displayName"}}
        rest["clients"] = [
            {
                k: v
                for k, v in client.items()
                if k not in {"description", "directAccessGrantsEnabled", "redirectUris", "webOrigins"}
            }
            | {
                "attributes": {
                    k: v for k, v in client.get("attributes", {}).items() if k != "post.logout.redirect.uris"
                }
            }
            for client in realm["clients"]
        ]
        return rest

    assert shared(dev) == shared(compose_realm)


def test_only_the_dev_realm_has_users_and_only_the_dev_script_uses_it() -> None:
    with_users = [path.name for path in sorted(KEYCLOAK_DIR.glob("*.json")) if load_realm(path).get("users")]
    assert with_users == [DEV_REALM.name]
    script = KEYCLOAK_SCRIPT.read_text()
    assert re.search(r'^REALM_FILE="\$REPO/deploy/keycloak/caesar-realm-dev\.json"$', script, re.M)
    assert "DEVELOPMENT ONLY" in script
    assert COMPOSE_FILE.read_text().count("caesar-realm-dev") == 0
    # The local admin's password comes from the generated secrets, not a default.
    assert 'credentials.py" env "$SECRETS_FILE"' in script
    assert "KEYCLOAK_ADMIN_PASSWORD:-" not in script


# --------------------------------------------------------------------------- docker compose


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_stop_grace_covers_the_services_own_shutdown(services: dict[str, Any]) -> None:
    """Docker kills a container after its stop grace: it must cover what SIGTERM starts."""
    from caesar_api.settings import ApiSettings
    from caesar_runner.settings import RunnerSettings

    api, runner = ApiSettings(), RunnerSettings()
    runner_needs = runner.http_shutdown_grace_s + runner.shutdown_grace_s + 2 * runner.kill_grace_s
    assert _seconds(services["runner"]["stop_grace_period"]) >= runner_needs
    assert _seconds(services["api"]["stop_grace_period"]) > api.http_shutdown_grace_s


def test_docker_compose_config_is_valid(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker CLI not installed; docker compose config not run")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False
    )
    if probe.returncode != 0:
        pytest.skip("docker compose plugin not installed; docker compose config not run")
    # With a stand-in .env it is valid; with an empty one compose refuses (${VAR:?...}).
    env = {key: os.environ[key] for key in ("PATH", "HOME", "DOCKER_CONFIG") if key in os.environ}
    dotenv, empty = tmp_path / "secrets.env", tmp_path / "empty.env"
    dotenv.write_text("".join(f"{name}={value}\n" for name, value in FAKE_SECRETS.items()))
    empty.write_text("")
    results = {
        path.name: subprocess.run(
            [docker, "compose", "--env-file", str(path), "-f", str(COMPOSE_FILE), "config", "-q"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        for path in (dotenv, empty)
    }
    assert results[dotenv.name].returncode == 0, results[dotenv.name].stderr
    assert results[empty.name].returncode != 0
    assert "run make secrets" in results[empty.name].stderr
