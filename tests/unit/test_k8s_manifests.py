"""Static checks of the Kubernetes manifests (``deploy/kubernetes``, issue 16).

Every kustomization a user may apply (the base, the overlays, the base with each optional
component) is rendered by kubectl's own kustomize, then each object is validated offline:
built-in kinds against the Kubernetes 1.34 OpenAPI schemas (kubernetes-validate, strict:
an unknown field fails), custom resources against the ``openAPIV3Schema`` of the vendored
CRDs (made strict the same way). On top, the properties the issue asks for: probes on
/healthz and /readyz, a non-root read-only container with no capabilities everywhere,
settings only from ConfigMaps and Secrets (and only names the services' settings classes
really read), the runner's RBAC limited to Jobs and Pods of its namespace, a ``metrics``
port on every service that the ServiceMonitor scrapes, and KEDA watching the queue the
runner of the k8s pool consumes.

kubectl is not optional here: without it the test fails (``scripts/k8s.sh install``
builds it) rather than skipping the manifests' only check. No cluster is needed.
"""

from __future__ import annotations

import copy
import os
import shlex
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from caesar_common.bus import runner_pool_queue
from tests.kube_support import kubectl_path
from tests.unit.test_compose import settings_class

pytestmark = pytest.mark.kubernetes

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "kubernetes"
BASE = K8S_DIR / "base"
OVERLAYS = K8S_DIR / "overlays"
COMPONENTS = K8S_DIR / "components"
CRD_DIR = K8S_DIR / "crds-for-tests"
SECRET_EXAMPLE = K8S_DIR / "secret.example.yaml"
RUNNER_RBAC = BASE / "runner-rbac.yaml"

KUBERNETES_VERSION = "1.34.0"  # the API server scripts/k8s.sh builds (v1.34.x)
SERVICES = ("api", "scheduler", "runner", "monitor", "accounting")
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}
IMAGE_REPOSITORY = "ghcr.io/caesar-rest"
RUNNER_IDENTITY = "caesar-runner"
# Services whose pods hold the shared uploads and job directories.
SHARED_VOLUME_SERVICES = {"api", "runner"}
CLAIMS = {"caesar-data": "CAESAR_DATA_ROOT", "caesar-jobs": "CAESAR_JOBS_ROOT"}
# What the runner may do, and nothing more: Jobs, and reading (deleting) their Pods.
RUNNER_GRANTS = {
    ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
    ("", "pods"): {"get", "list", "watch", "delete"},
    ("", "pods/log"): {"get"},
}
# Variables that are not CAESAR_* settings but that the services read: OpenTelemetry's
# (caesar_common.telemetry), and HOME, pointed at the writable /tmp of a read-only pod.
OTHER_VARIABLES = {"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "HOME"}


# -- rendering ----------------------------------------------------------------------------


def kubectl_binary() -> str:
    """The kubectl scripts/k8s.sh builds; fails, never skips, when it is missing: a skip
    would turn the manifests' only check into a pass."""
    return str(kubectl_path())


def kustomization_targets() -> dict[str, tuple[Path, tuple[Path, ...]]]:
    """Every kustomization a user may apply: name -> (kustomization, components added).

    Components are directories of ``components/``, so a new one is checked without
    being listed here.
    """
    targets: dict[str, tuple[Path, tuple[Path, ...]]] = {"base": (BASE, ())}
    for overlay in sorted(p for p in OVERLAYS.iterdir() if p.is_dir()):
        targets[f"overlays/{overlay.name}"] = (overlay, ())
    for component in sorted(p for p in COMPONENTS.iterdir() if p.is_dir()):
        targets[f"base+{component.name}"] = (BASE, (component,))
        targets[f"dev+{component.name}"] = (OVERLAYS / "dev", (component,))
    return targets


def wrapper_kustomization(
    directory: Path, resource: Path, components: tuple[Path, ...], namespace: str
) -> Path:
    """Write in ``directory`` a kustomization of ``resource`` plus ``components`` in ``namespace``.

    kustomize takes relative paths only, so they are relative to ``directory``.
    """
    doc: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": [os.path.relpath(resource, directory)],
    }
    if components:
        doc["components"] = [os.path.relpath(c, directory) for c in components]
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(doc))
    return directory


def kustomize(kubectl: str, directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize`` renders from ``directory``."""
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{shlex.join(result.args)} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    kubectl = kubectl_binary()
    out: dict[str, list[dict[str, Any]]] = {}
    for name, (resource, components) in kustomization_targets().items():
        if not components:
            out[name] = kustomize(kubectl, resource)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            # A namespace too, as users of a component would set one.
            out[name] = kustomize(kubectl, wrapper_kustomization(Path(tmp), resource, components, "caesar"))
    return out


TARGETS = sorted(kustomization_targets())


def objects_of(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services' workloads by service name (``caesar-api`` -> ``api``).

    Deployments, but the runner's is a StatefulSet: a replaced runner pod keeps its
    hostname, hence its runner id, and so reattaches to the Jobs it claimed.
    """
    found = {d["metadata"]["name"].removeprefix("caesar-"): d for d in docs if d["kind"] in WORKLOAD_KINDS}
    assert set(found) == set(SERVICES)
    assert {s: d["kind"] for s, d in found.items()} == {
        s: "StatefulSet" if s == "runner" else "Deployment" for s in SERVICES
    }
    return found


def containers(deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def config_of(docs: list[dict[str, Any]], deployment: Mapping[str, Any]) -> dict[str, str]:
    """The environment the ConfigMaps give a Deployment's main container (later refs win)."""
    maps = objects_of(docs, "ConfigMap")
    env: dict[str, str] = {}
    for source in deployment["spec"]["template"]["spec"]["containers"][0].get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]].get("data", {}))
    return env


# -- schemas -------------------------------------------------------------------------------


def strict_schema(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields, as kubernetes-validate's strict mode does.

    The API server drops unknown fields of a custom resource silently (pruning), so a
    misspelt field would pass the dry-run and be lost; here it fails.
    """
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> the strict openAPIV3Schema of each vendored CRD version."""
    schemas: dict[tuple[str, str], Any] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                schemas[(f"{group}/{version['name']}", kind)] = strict_schema(schema)
    return schemas


def validate_object(obj: dict[str, Any]) -> None:
    """Validate one object against its schema; raises with the path of the first error."""
    key = (obj["apiVersion"], obj["kind"])
    if key in crd_schemas():
        jsonschema.Draft4Validator(crd_schemas()[key]).validate(copy.deepcopy(obj))
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


# -- settings ---------------------------------------------------------------------------


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No CAESAR_*/OTEL_* variable of the test run leaks into the settings under test."""
    for name in list(os.environ):
        if name.startswith(("CAESAR_", "OTEL_")):
            monkeypatch.delenv(name)
    return monkeypatch


def secret_example() -> dict[str, set[str]]:
    """Secret name -> its keys, as secret.example.yaml documents them."""
    docs = [d for d in yaml.safe_load_all(SECRET_EXAMPLE.read_text()) if d]
    return {d["metadata"]["name"]: set(d["stringData"]) for d in docs if d["kind"] == "Secret"}


# -- tests ---------------------------------------------------------------------------------


def test_every_kustomization_renders_with_the_five_services(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    assert {"base", "overlays/dev", "base+keda", "base+servicemonitor"} <= set(rendered)
    for docs in rendered.values():
        deployments(docs)


@pytest.mark.parametrize("target", TARGETS)
def test_every_object_is_valid_for_the_api_server(
    rendered: dict[str, list[dict[str, Any]]], target: str
) -> None:
    for obj in rendered[target]:
        try:
            validate_object(obj)
        except (jsonschema.ValidationError, kubernetes_validate.utils.SchemaNotFoundError) as error:
            pytest.fail(f"{target}: {obj['kind']}/{obj['metadata']['name']}: {error}")


def test_the_validation_catches_a_misspelt_field() -> None:
    """The strict schemas refuse what the API server would drop or refuse."""
    deployment = next(
        d for d in yaml.safe_load_all((BASE / "api.yaml").read_text()) if d["kind"] == "Deployment"
    )
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(jsonschema.ValidationError):
        validate_object(typo)
    scaled = next(
        d
        for d in yaml.safe_load_all((COMPONENTS / "keda" / "scaledobject.yaml").read_text())
        if d["kind"] == "ScaledObject"
    )
    validate_object(scaled)
    scaled["spec"]["minReplicas"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_object(scaled)


def test_runner_rbac_is_plain_yaml_the_fixture_can_apply() -> None:
    """tests/kube_support.py applies this file alone with `kubectl apply -f`."""
    docs = [d for d in yaml.safe_load_all(RUNNER_RBAC.read_text()) if d]
    assert [d["kind"] for d in docs] == ["ServiceAccount", "Role", "RoleBinding"]
    for doc in docs:
        assert doc["metadata"]["name"] == RUNNER_IDENTITY
        assert "namespace" not in doc["metadata"]
        validate_object(doc)


@pytest.mark.parametrize("target", TARGETS)
def test_probes_are_on_healthz_and_readyz(rendered: dict[str, list[dict[str, Any]]], target: str) -> None:
    for service, deployment in deployments(rendered[target]).items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"] for p in container["ports"]}
            for probe, path in (
                ("startupProbe", "/healthz"),
                ("livenessProbe", "/healthz"),
                ("readinessProbe", "/readyz"),
            ):
                get = container[probe]["httpGet"]
                assert (get["path"], get["port"]) == (path, "http"), (target, service, probe)
                assert get["port"] in ports


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_is_non_root_read_only_and_confined(
    rendered: dict[str, list[dict[str, Any]]], target: str
) -> None:
    for service, deployment in deployments(rendered[target]).items():
        pod = deployment["spec"]["template"]["spec"]
        pod_context = pod.get("securityContext", {})
        assert pod.get("hostNetwork", False) is False
        assert pod.get("hostPID", False) is False
        assert pod["enableServiceLinks"] is False, (
            f"{service}: CAESAR_*_PORT variables of the Services would leak in"
        )
        writable = {m["mountPath"] for c in containers(deployment) for m in c.get("volumeMounts", [])}
        assert "/tmp" in writable, service
        assert config_of(rendered[target], deployment)["HOME"] in writable, f"{service}: caches under $HOME"
        for container in containers(deployment):
            context = container.get("securityContext", {})
            # A container's own setting wins over the pod's.
            effective = {**pod_context, **context}
            where = (target, service, container["name"])
            assert effective.get("runAsNonRoot") is True, where
            assert effective.get("runAsUser", 0) != 0, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("privileged", False) is False, where
            assert context.get("capabilities") == {"drop": ["ALL"]}, where
            assert effective.get("seccompProfile") == {"type": "RuntimeDefault"}, where
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), (where, bound)


@pytest.mark.parametrize("target", TARGETS)
def test_settings_come_only_from_configmaps_and_secrets(
    rendered: dict[str, list[dict[str, Any]]], target: str
) -> None:
    docs = rendered[target]
    maps = objects_of(docs, "ConfigMap")
    generated_secrets = {name: set(s.get("data", {})) for name, s in objects_of(docs, "Secret").items()}
    documented = secret_example()
    for service, deployment in deployments(docs).items():
        for container in containers(deployment):
            for source in container.get("envFrom", []):
                assert set(source) == {"configMapRef"}, (service, source)
                assert source["configMapRef"]["name"] in maps, (service, source)
            for var in container.get("env", []):
                assert "value" not in var, f"{service}: {var['name']} is a literal, not a reference"
                ref = var["valueFrom"]
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in maps[ref["configMapKeyRef"]["name"]]["data"]
                    continue
                secret = ref["secretKeyRef"]
                if generated_secrets:  # the dev overlay's placeholders, hash-suffixed
                    assert secret["key"] in generated_secrets[secret["name"]], (service, var)
                else:  # the operator's Secrets, as the example documents them
                    assert secret["key"] in documented.get(secret["name"], set()), (service, var)


def test_credentials_are_secrets_each_service_has_its_own() -> None:
    """No Secret ships outside the dev overlay, and each service reads its own only."""
    kubectl = kubectl_binary()
    documented = secret_example()
    assert set(documented) == {f"caesar-{s}-credentials" for s in SERVICES}
    docs = kustomize(kubectl, BASE)
    assert not objects_of(docs, "Secret"), "the base must not carry credentials"
    assert not objects_of(kustomize(kubectl, OVERLAYS / "production-example"), "Secret")
    for service, deployment in deployments(docs).items():
        env = {
            v["name"]: v["valueFrom"] for v in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        for variable in ("CAESAR_AMQP_URL", "CAESAR_MONGO_URL"):
            assert env[variable]["secretKeyRef"]["name"] == f"caesar-{service}-credentials", (
                service,
                variable,
            )
    for kustomization in K8S_DIR.rglob("kustomization.yaml"):
        resources = yaml.safe_load(kustomization.read_text()).get("resources", [])
        assert not [r for r in resources if r.endswith(SECRET_EXAMPLE.name)], kustomization


@pytest.mark.parametrize("target", ["base", "overlays/dev", "overlays/production-example"])
def test_each_services_settings_load_from_its_configmaps(
    rendered: dict[str, list[dict[str, Any]]], target: str, clean_environment: pytest.MonkeyPatch
) -> None:
    """Every key is a setting the service reads, and the values parse (JSON lists included)."""
    docs = rendered[target]
    for service, deployment in deployments(docs).items():
        cls = settings_class(service)
        config = config_of(docs, deployment)
        for key in config:
            if not key.startswith("CAESAR_"):
                assert key in OTHER_VARIABLES, (service, key)
            else:
                assert key.removeprefix("CAESAR_").lower() in cls.model_fields, (
                    f"{service}: {key} is no setting of {cls.__name__}"
                )
        settings = load_settings(service, config, clean_environment)
        port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]
        assert (port["name"], port["containerPort"]) == ("http", settings.http_port), service
        assert settings.http_host == "0.0.0.0"


def load_settings(service: str, config: Mapping[str, str], env: pytest.MonkeyPatch) -> Any:
    """The service's settings as its pods would load them from ``config``."""
    with env.context() as scoped:
        for key, value in config.items():
            scoped.setenv(key, value)
        return settings_class(service)()


@pytest.mark.parametrize("target", ["base", "overlays/dev", "overlays/production-example"])
def test_jobs_reach_the_k8s_runner_and_run_its_image_on_its_claims(
    rendered: dict[str, list[dict[str, Any]]], target: str, clean_environment: pytest.MonkeyPatch
) -> None:
    """The api accepts, the scheduler routes to, and a runner serves the same pool; its job
    pods run the runner's image (whatever tag the overlay set) on the claims it mounts."""
    docs = rendered[target]
    found = deployments(docs)
    api, scheduler, runner = (
        load_settings(s, config_of(docs, found[s]), clean_environment) for s in ("api", "scheduler", "runner")
    )
    assert (runner.executor, runner.pool) == ("kubernetes", "k8s")
    assert runner.runner_id == f"{socket.gethostname()}-k8s", (
        "from the pod's stable hostname, one per replica"
    )
    assert set(scheduler.pools) == {runner.pool}, "every pool the scheduler routes to has a runner here"
    assert set(api.runnable_executors) == set(scheduler.pools)
    pod = found["runner"]["spec"]["template"]["spec"]
    assert runner.k8s_default_image == pod["containers"][0]["image"]
    claims = {v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]}
    assert {runner.k8s_data_claim, runner.k8s_jobs_claim} <= claims
    assert (runner.k8s_run_as_user, runner.k8s_run_as_group) == (
        pod["securityContext"]["runAsUser"],
        pod["securityContext"]["runAsGroup"],
    ), "the runner reads what the job pods write"
    assert runner.k8s_namespace == "", "the runner's own namespace"
    assert runner.k8s_kubeconfig is None, "in-cluster, as its ServiceAccount"


@pytest.mark.parametrize("target", TARGETS)
def test_shared_volumes_are_rwx_claims_mounted_where_the_settings_say(
    rendered: dict[str, list[dict[str, Any]]], target: str
) -> None:
    docs = rendered[target]
    claims = objects_of(docs, "PersistentVolumeClaim")
    assert set(claims) == set(CLAIMS)
    for claim in claims.values():
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for service, deployment in deployments(docs).items():
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]}
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0].get("volumeMounts", [])}
        mounted = {volumes[name]: path for name, path in mounts.items() if volumes[name]}
        if service in SHARED_VOLUME_SERVICES:
            config = config_of(docs, deployment)
            assert mounted == {claim: config[setting] for claim, setting in CLAIMS.items()}, service
        else:
            assert not mounted, f"{service} needs no shared volume"


@pytest.mark.parametrize("target", TARGETS)
def test_runner_rbac_is_limited_to_jobs_and_pods_of_its_namespace(
    rendered: dict[str, list[dict[str, Any]]], target: str
) -> None:
    docs = rendered[target]
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, "nothing cluster-wide"
    roles, bindings = objects_of(docs, "Role"), objects_of(docs, "RoleBinding")
    assert set(roles) == set(bindings) == {RUNNER_IDENTITY}
    for rule in roles[RUNNER_IDENTITY]["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, "no resourceNames or nonResourceURLs tricks"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                allowed = RUNNER_GRANTS.get((group, resource))
                assert allowed is not None, f"the runner may not touch {group or 'core'}/{resource}"
                assert set(rule["verbs"]) <= allowed, (group, resource, rule["verbs"])
    binding = bindings[RUNNER_IDENTITY]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": RUNNER_IDENTITY,
    }
    assert [(s["kind"], s["name"]) for s in binding["subjects"]] == [("ServiceAccount", RUNNER_IDENTITY)]
    namespace = binding["metadata"].get("namespace")
    assert all(s.get("namespace") == namespace for s in binding["subjects"]), (
        "the runner of this namespace only"
    )
    for service, deployment in deployments(docs).items():
        pod = deployment["spec"]["template"]["spec"]
        if service == "runner":
            assert pod["serviceAccountName"] == RUNNER_IDENTITY
            assert pod.get("automountServiceAccountToken", True) is True
        else:
            assert pod.get("serviceAccountName", "default") == "default", service
            assert pod["automountServiceAccountToken"] is False, f"{service} needs no API token"


@pytest.mark.parametrize("target", TARGETS)
def test_every_service_has_a_metrics_port(rendered: dict[str, list[dict[str, Any]]], target: str) -> None:
    docs = rendered[target]
    services = objects_of(docs, "Service")
    for service, deployment in deployments(docs).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
        matching = [
            s
            for s in services.values()
            if s["spec"].get("selector") and s["spec"]["selector"].items() <= labels.items()
        ]
        assert [s["metadata"]["name"] for s in matching] == [f"caesar-{service}"], service
        metrics = [p for p in matching[0]["spec"]["ports"] if p["name"] == "metrics"]
        assert len(metrics) == 1, service
        assert metrics[0]["targetPort"] in ports, service


def test_the_servicemonitor_scrapes_every_metrics_port(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["base+servicemonitor"]
    (monitor,) = objects_of(docs, "ServiceMonitor").values()
    selector = monitor["spec"]["selector"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")

    def selected(labels: dict[str, str]) -> bool:
        exprs = selector.get("matchExpressions", [])
        return selector["matchLabels"].items() <= labels.items() and all(
            e["operator"] == "In" and labels.get(e["key"]) in e["values"] for e in exprs
        )

    scraped = {name for name, s in objects_of(docs, "Service").items() if selected(s["metadata"]["labels"])}
    assert scraped == {f"caesar-{s}" for s in SERVICES}
    for name in scraped:
        assert "metrics" in {p["name"] for p in objects_of(docs, "Service")[name]["spec"]["ports"]}


@pytest.mark.parametrize("target", ["base+keda", "dev+keda", "overlays/production-example"])
def test_keda_scales_the_runner_on_its_pool_queue(
    rendered: dict[str, list[dict[str, Any]]], target: str
) -> None:
    docs = rendered[target]
    runner = deployments(docs)["runner"]
    (scaled,) = objects_of(docs, "ScaledObject").values()
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "caesar-runner"}
    assert "replicas" not in runner["spec"], "KEDA owns the runner's replica count"
    assert spec["minReplicaCount"] >= 1, "a pool without a live runner is sent no commands"
    (trigger,) = spec["triggers"]
    pool = config_of(docs, runner)["CAESAR_POOL"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == runner_pool_queue(pool) == "runner.k8s"
    auth = objects_of(docs, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    (host,) = auth["spec"]["secretTargetRef"]
    assert host["parameter"] == "host"
    runner_secret = runner["spec"]["template"]["spec"]["containers"][0]["env"]
    amqp = next(v["valueFrom"]["secretKeyRef"] for v in runner_secret if v["name"] == "CAESAR_AMQP_URL")
    assert (host["name"], host["key"]) == (amqp["name"], amqp["key"]), (
        "the runner's broker URL, renamed alike"
    )


@pytest.mark.parametrize("target", TARGETS)
def test_images_are_the_services_with_a_tag(rendered: dict[str, list[dict[str, Any]]], target: str) -> None:
    for service, deployment in deployments(rendered[target]).items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        image, _, tag = container["image"].rpartition(":")
        assert image == f"{IMAGE_REPOSITORY}/{service}", container["image"]
        assert tag, f"{container['image']} has no tag"
        if target.startswith(("overlays/dev", "dev+")):
            assert tag == "dev", container["image"]


def test_external_services_are_aliases(rendered: dict[str, list[dict[str, Any]]]) -> None:
    services = objects_of(rendered["base"], "Service")
    for name in ("caesar-rabbitmq", "caesar-mongodb"):
        assert services[name]["spec"]["type"] == "ExternalName", name
    assert set(objects_of(rendered["base"], "StatefulSet")) == {RUNNER_IDENTITY}, (
        "the broker and database are the operator's"
    )
