"""Static checks of the Docker Compose deployment.

``docker-compose.yml``, ``deploy/Dockerfile``, ``deploy/prometheus/prometheus.yml`` and
the Keycloak realm must agree with each other and with the code: targets that exist,
modules that exist, ``CAESAR_*`` variables that the services' settings classes really
read, ports that match between settings, healthchecks, published ports and scrape
targets. No Docker engine is needed; ``docker compose config`` runs only where the
compose plugin exists.
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

from caesar_common.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SERVICES = {"api": 8080, "scheduler": 8081, "runner": 8082, "monitor": 8083, "accounting": 8084}
INFRA = ("mongodb", "rabbitmq", "keycloak", "jaeger", "prometheus")
DATA_ROOT = "/var/lib/caesar/data"
JOBS_ROOT = "/var/lib/caesar/jobs"
# Services that read or write job inputs and outputs share these named volumes.
SHARED_VOLUMES = {"caesar-data": DATA_ROOT, "caesar-jobs": JOBS_ROOT}
FILE_SERVICES = ("api", "runner")

COMMON_ENV = {
    "CAESAR_AMQP_URL": "amqp://guest:guest@rabbitmq:5672/",
    "CAESAR_MONGO_URL": "mongodb://mongodb:27017/",
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


def port_mappings(service: dict[str, Any]) -> list[tuple[str | None, int]]:
    """(host part or None, container port) of each entry of ``ports``."""
    result: list[tuple[str | None, int]] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            result.append((None if published is None else str(published), int(entry["target"])))
            continue
        spec = str(entry).split("/", 1)[0]
        host, _, container = spec.rpartition(":")
        result.append((host or None, int(container)))
    return result


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
            else:
                assert (ROOT / source).exists(), f"{name}: bind mount {source} does not exist"


def test_infrastructure(services: dict[str, Any]) -> None:
    mongodb, rabbitmq = services["mongodb"], services["rabbitmq"]
    assert mongodb["image"].startswith("mongo:7")
    assert any(is_named_volume(src or ".") for src, _ in volume_mounts(mongodb))
    assert "healthcheck" in mongodb
    assert rabbitmq["image"].startswith("rabbitmq:3.13-management")
    assert "healthcheck" in rabbitmq
    assert {(host, port) for host, port in port_mappings(rabbitmq)} >= {
        ("5672", 5672),
        ("15672", 15672),
    }
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith(("jaegertracing/jaeger:2.", "jaegertracing/all-in-one:"))
    assert {4317, 4318, 16686} <= {port for _, port in port_mappings(jaeger)}


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
    for key in [key for key in os.environ if key.startswith("CAESAR_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = cls()
    assert settings.http_port == SERVICES[name]
    assert settings.http_host == "0.0.0.0"
    assert str(settings.data_root) == DATA_ROOT
    assert str(settings.jobs_root) == JOBS_ROOT
    assert settings.amqp_url == COMMON_ENV["CAESAR_AMQP_URL"]
    assert settings.mongo_url == COMMON_ENV["CAESAR_MONGO_URL"]


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
    assert ("8080", 8080) in port_mappings(services["api"])
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
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for static in job.get("static_configs") or []:
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                scraped.add((host, int(port)))
        for dns in job.get("dns_sd_configs") or []:
            scraped.update((host, int(dns["port"])) for host in dns["names"])
    expected = {(name, int(environment(services[name])["CAESAR_HTTP_PORT"])) for name in SERVICES}
    assert expected <= scraped
    service_targets = {(host, port) for host, port in scraped if host in services}
    assert service_targets == expected, f"unexpected targets {service_targets - expected}"
    # The runner scales: its replicas are found through DNS, not one fixed address.
    runner_jobs = [
        job
        for job in config["scrape_configs"]
        if any("runner" in dns["names"] for dns in job.get("dns_sd_configs") or [])
    ]
    assert runner_jobs, "runner replicas are not discovered"


# --------------------------------------------------------------------------- Keycloak


def test_keycloak_imports_the_caesar_realm(services: dict[str, Any]) -> None:
    keycloak = services["keycloak"]
    assert keycloak["image"].startswith("quay.io/keycloak/keycloak:26.")
    command = keycloak["command"]
    command = command.split() if isinstance(command, str) else command
    assert command[0] == "start-dev"
    assert "--import-realm" in command
    env = environment(keycloak)
    assert env["KC_HTTP_PORT"] == "8180"
    assert {"KC_BOOTSTRAP_ADMIN_USERNAME", "KC_BOOTSTRAP_ADMIN_PASSWORD"} <= set(env)
    assert ("8180", 8180) in port_mappings(keycloak)
    assert environment(services["api"])["CAESAR_KEYCLOAK_URL"].endswith(":8180")

    realm_files = [
        source
        for source, target in volume_mounts(keycloak)
        if source and target.startswith("/opt/keycloak/data/import/")
    ]
    assert realm_files == ["./deploy/keycloak/caesar-realm.json"]
    realm = json.loads((ROOT / realm_files[0]).read_text())
    assert realm["realm"] == "caesar"
    assert realm["enabled"] is True
    assert {role["name"] for role in realm["roles"]["realm"]} >= {"user", "admin"}
    clients = {client["clientId"]: client for client in realm["clients"]}
    api = clients["caesar-api"]
    assert api["publicClient"] is False
    assert api.get("bearerOnly", False) is False
    cli = clients["caesar-cli"]
    assert cli["publicClient"] is True
    assert cli["directAccessGrantsEnabled"] is True
    audiences = [
        mapper["config"].get("included.client.audience")
        for mapper in cli.get("protocolMappers", [])
        if mapper["protocolMapper"] == "oidc-audience-mapper"
    ]
    assert audiences == [environment(services["api"])["CAESAR_KEYCLOAK_AUDIENCE"]]
    # Development users: at least two ordinary users and one admin, with passwords.
    users = realm["users"]
    roles = [set(user.get("realmRoles", [])) for user in users]
    assert sum(1 for r in roles if "user" in r and "admin" not in r) >= 2
    assert sum(1 for r in roles if "admin" in r) >= 1
    assert all(user["credentials"][0]["type"] == "password" for user in users)


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


def test_docker_compose_config_is_valid() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker CLI not installed; docker compose config not run")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False
    )
    if probe.returncode != 0:
        pytest.skip("docker compose plugin not installed; docker compose config not run")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
