"""Pure parts of the Kubernetes executor: the Job of an attempt, names, outcome mapping."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from caesar_common.apps.base import PlanContext, Step
from caesar_common.apps.registry import APPS
from caesar_common.jobstate import JobState
from caesar_runner.executors.base import JobSpec, Outcome
from caesar_runner.executors.kubernetes.executor import container_image_of
from caesar_runner.executors.kubernetes.jobspec import (
    ANNOTATION_OWNER,
    LABEL_ATTEMPT,
    LABEL_JOB,
    LABEL_MANAGED_BY,
    LABEL_OWNER,
    LABEL_POOL,
    PodSettings,
    VolumeSettings,
    container_names,
    job_manifest,
    job_name,
    label_value,
)
from caesar_runner.executors.kubernetes.outcome import (
    elapsed_s,
    has_started,
    outcome_of,
    stale_attempts,
    stuck_container,
)

JOBS = Path("/var/lib/caesar/jobs")
DATA = Path("/var/lib/caesar/data")
BIN = Path("/app/.venv/bin")
JOB_ID = "0f3c9d2e-1b2a-4c3d-8e4f-5a6b7c8d9e0f"
OWNER = "alice@example.org"
IMAGE = "registry.example.org/caesar-runner:1.2.3"


def manifest_of(pod_settings: PodSettings, spec: JobSpec) -> dict[str, Any]:
    """The Job the executor would create for ``spec``."""
    return job_manifest(pod_settings, spec, container_image_of(spec.app))


def settings(**kw: Any) -> PodSettings:
    fields: dict[str, Any] = {
        "namespace": "caesar-jobs",
        "pool": "k8s",
        "default_image": IMAGE,
        "data": VolumeSettings("caesar-data", DATA, read_only=True),
        "jobs": VolumeSettings("caesar-jobs", JOBS),
        "bin_dir": BIN,
        "pod_annotations": {"kwok.caesar-rest.io/outcome": "succeed"},
    }
    fields.update(kw)
    return PodSettings(**fields)


def attempt_dir(attempt: int = 2) -> Path:
    return JOBS / OWNER / JOB_ID / "attempts" / str(attempt)


def aegean_spec(attempt: int = 2) -> JobSpec:
    app = APPS["aegean"]
    params = app.validate({"ncores": 2})
    job_dir = attempt_dir(attempt)
    steps = app.plan(params, PlanContext(job_dir / "image.fits", job_dir, BIN))
    need = app.resources(params, 16 * 2**20)
    return JobSpec(
        job_id=JOB_ID,
        owner=OWNER,
        attempt=attempt,
        app="aegean",
        steps=steps,
        job_dir=job_dir,
        wall_time_s=900,
        cores=need.cores,
        memory_mb=need.memory_mb,
    )


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def all_containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(manifest)
    return [*spec.get("initContainers", []), *spec["containers"]]


# -- the Job of an aegean attempt -----------------------------------------------------------


def test_aegean_job_runs_the_plan_without_a_shell() -> None:
    spec = aegean_spec()
    manifest = manifest_of(settings(), spec)
    assert manifest["metadata"]["name"] == f"caesar-{JOB_ID}-2"
    assert manifest["metadata"]["namespace"] == "caesar-jobs"
    init, main = pod_spec(manifest)["initContainers"], pod_spec(manifest)["containers"]
    assert [c["name"] for c in init] == ["00-bane"]
    assert [c["name"] for c in main] == ["01-aegean"]
    for container, step in zip(all_containers(manifest), spec.steps, strict=True):
        assert container["command"] == list(step.argv)  # the argv itself: no sh -c
        assert "args" not in container
        assert container["image"] == IMAGE
        assert container["workingDir"] == str(spec.job_dir)
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["PATH"].startswith(f"{BIN}:")
        assert env["HOME"] == env["TMPDIR"] == str(spec.job_dir / "tmp")
        assert env["OMP_NUM_THREADS"] == "1"
        assert env["MPLBACKEND"] == "Agg"
        assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PYTHONUNBUFFERED", *step.env}
        amounts = {"cpu": "2", "memory": f"{spec.memory_mb}Mi"}
        assert container["resources"] == {"requests": amounts, "limits": amounts}
    assert init[0]["command"][0] == str(BIN / "BANE")


def test_aegean_job_spec_bounds_the_attempt() -> None:
    manifest = manifest_of(settings(ttl_after_finished_s=600), aegean_spec())
    job = manifest["spec"]
    assert job["backoffLimit"] == 0
    assert job["activeDeadlineSeconds"] == 900
    assert job["ttlSecondsAfterFinished"] == 600
    assert pod_spec(manifest)["restartPolicy"] == "Never"


def test_aegean_job_mounts_the_shared_volumes_where_the_runner_sees_them() -> None:
    manifest = manifest_of(settings(), aegean_spec())
    volumes = {v["name"]: v for v in pod_spec(manifest)["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "caesar-data"}
    assert volumes["jobs"]["persistentVolumeClaim"] == {"claimName": "caesar-jobs"}
    assert "emptyDir" in volumes["tmp"]
    for container in all_containers(manifest):
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts[str(DATA)]["readOnly"] is True
        assert mounts[str(JOBS)]["readOnly"] is False
        assert mounts["/tmp"]["name"] == "tmp"


def test_one_claim_for_both_volumes_is_mounted_twice_with_sub_paths() -> None:
    shared = settings(
        data=VolumeSettings("caesar", DATA, "data", read_only=True),
        jobs=VolumeSettings("caesar", JOBS, "jobs"),
    )
    manifest = manifest_of(shared, aegean_spec())
    claims = [v for v in pod_spec(manifest)["volumes"] if "persistentVolumeClaim" in v]
    assert len(claims) == 1
    mounts = pod_spec(manifest)["containers"][0]["volumeMounts"]
    assert {(m["mountPath"], m.get("subPath")) for m in mounts} == {
        (str(DATA), "data"),
        (str(JOBS), "jobs"),
        ("/tmp", None),
    }


def test_aegean_job_is_labelled_for_the_watch_and_the_owner_is_exact_in_an_annotation() -> None:
    manifest = manifest_of(settings(pod_labels={LABEL_POOL: "other", "team": "radio"}), aegean_spec())
    pod_meta = manifest["spec"]["template"]["metadata"]
    for meta in (manifest["metadata"], pod_meta):
        labels = meta["labels"]
        assert labels[LABEL_MANAGED_BY] == "caesar-rest"
        assert labels[LABEL_JOB] == JOB_ID
        assert labels[LABEL_ATTEMPT] == "2"
        assert labels[LABEL_POOL] == "k8s"  # a deployment's extra label cannot override ours
        assert labels[LABEL_OWNER] != OWNER
        assert labels[LABEL_OWNER].startswith("alice-example.org-")
        assert meta["annotations"][ANNOTATION_OWNER] == OWNER
    assert pod_meta["labels"]["team"] == "radio"
    assert pod_meta["annotations"]["kwok.caesar-rest.io/outcome"] == "succeed"


def test_aegean_job_pod_is_locked_down() -> None:
    manifest = manifest_of(settings(), aegean_spec())
    pod = pod_spec(manifest)
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for container in all_containers(manifest):
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
    for key in ("serviceAccountName", "nodeSelector", "tolerations", "imagePullSecrets"):
        assert key not in pod


def test_optional_pod_settings_reach_the_pod() -> None:
    toleration = {"key": "astro", "operator": "Exists", "effect": "NoSchedule"}
    manifest = manifest_of(
        settings(
            service_account="caesar-job",
            node_selector={"disk": "ssd"},
            tolerations=(toleration,),
            image_pull_secrets=("regcred",),
            image_pull_policy="Always",
            fs_group=None,
        ),
        aegean_spec(),
    )
    pod = pod_spec(manifest)
    assert pod["serviceAccountName"] == "caesar-job"
    assert pod["nodeSelector"] == {"disk": "ssd"}
    assert pod["tolerations"] == [toleration]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert "fsGroup" not in pod["securityContext"]
    assert {c["imagePullPolicy"] for c in all_containers(manifest)} == {"Always"}


@pytest.mark.parametrize("strict", [False, True])
def test_the_job_is_valid_against_the_kubernetes_schema(strict: bool) -> None:
    manifest = manifest_of(
        settings(tolerations=({"key": "a", "operator": "Exists"},), image_pull_secrets=("r",)),
        aegean_spec(),
    )
    kubernetes_validate.validate(manifest, "1.34", strict=strict)


def test_a_job_dir_off_the_jobs_volume_is_refused() -> None:
    spec = aegean_spec()
    moved = replace(spec, job_dir=Path("/elsewhere/job"))
    with pytest.raises(ValueError, match="not under the jobs volume"):
        job_manifest(settings(), moved, None)


# -- images ------------------------------------------------------------------------------


def container_app_spec(app_name: str, steps: list[Step] | None = None) -> JobSpec:
    app = APPS[app_name]
    job_dir = attempt_dir()
    plan = steps or app.plan(app.validate({}), PlanContext(job_dir / "image.fits", job_dir, BIN))
    return JobSpec(JOB_ID, OWNER, 1, app_name, plan, job_dir, 3600, 1, 2048)


def test_container_app_runs_its_own_image_on_its_own_path() -> None:
    manifest = manifest_of(settings(), container_app_spec("caesar"))
    (container,) = all_containers(manifest)
    assert container["image"] == "sriggi/caesar-job:latest"
    assert container["command"][0] == "SFinderSubmitter.sh"
    env = {e["name"] for e in container["env"]}
    assert "PATH" not in env
    assert "HOME" in env


def test_the_image_mapping_overrides_the_app_image_and_the_default() -> None:
    images = {"caesar": "mirror.example.org/caesar:7", "aegean": "mirror.example.org/aegean:2"}
    caesar = manifest_of(settings(images=images), container_app_spec("caesar"))
    aegean = manifest_of(settings(images=images), aegean_spec())
    assert {c["image"] for c in all_containers(caesar)} == {"mirror.example.org/caesar:7"}
    assert {c["image"] for c in all_containers(aegean)} == {"mirror.example.org/aegean:2"}


def test_our_own_step_in_a_container_app_job_runs_in_the_default_image() -> None:
    job_dir = attempt_dir()
    steps = [
        Step("caesar", ("SFinderSubmitter.sh", "--run")),
        Step("finalize", (str(BIN / "python"), "-m", "caesar_runner.finalize", "--job-dir", str(job_dir))),
    ]
    manifest = manifest_of(settings(), container_app_spec("caesar", steps))
    images = [c["image"] for c in all_containers(manifest)]
    assert images == ["sriggi/caesar-job:latest", IMAGE]


# -- names -------------------------------------------------------------------------------


def test_job_names_are_dns_labels_and_stable() -> None:
    assert job_name(JOB_ID, 3) == f"caesar-{JOB_ID}-3"
    odd = job_name("Not_A UUID/" + "x" * 80, 12)
    assert len(odd) <= 63
    assert odd.endswith("-12")
    assert odd == job_name("Not_A UUID/" + "x" * 80, 12)
    assert odd != job_name("Not_A UUID/" + "x" * 80 + "y", 12)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", odd)


def test_label_values_keep_valid_ones_and_hash_the_rest_apart() -> None:
    assert label_value("anonymous") == "anonymous"
    assert label_value(JOB_ID) == JOB_ID
    a, b = label_value("a@b"), label_value("a#b")
    assert a != b
    assert a.startswith("a-b-")
    assert b.startswith("a-b-")
    long = label_value("u" * 100)
    assert len(long) <= 63
    assert label_value("@@@")
    assert label_value("@@@")[0].isalnum()


def test_container_names_follow_the_step_logs() -> None:
    steps = [Step("bane", ("x",)), Step("Odd Name_!", ("y",))]
    assert container_names(steps) == ["00-bane", "01-odd-name"]


# -- outcomes ----------------------------------------------------------------------------

CONTAINERS = ["00-bane", "01-aegean"]
STEPS = ["bane", "aegean"]
T_START = "2026-11-30T20:00:00Z"
T_END = "2026-11-30T20:00:42Z"


def job(condition: str | None = None, reason: str = "", message: str = "", **meta: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": T_START}
    if condition is not None:
        status["conditions"] = [
            {"type": "FailureTarget", "status": "True", "reason": reason},
            {
                "type": condition,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": T_END,
            },
        ]
        if condition == "Complete":
            status["completionTime"] = T_END
    return {"metadata": {"name": "caesar-x-1", **meta}, "status": status}


def terminated(name: str, code: int, reason: str = "Error", message: str = "") -> dict[str, Any]:
    return {"name": name, "state": {"terminated": {"exitCode": code, "reason": reason, "message": message}}}


def pod(
    phase: str = "Failed",
    init: list[dict[str, Any]] | None = None,
    main: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "caesar-x-1-abcde", "labels": {"batch.kubernetes.io/job-name": "caesar-x-1"}},
        "status": {
            "phase": phase,
            "initContainerStatuses": init or [],
            "containerStatuses": main or [],
            **status,
        },
    }


def outcome(job_obj: dict[str, Any], pods: list[dict[str, Any]]) -> Outcome | None:
    return outcome_of(job_obj, pods, containers=CONTAINERS, step_names=STEPS, wall_time_s=900, memory_mb=512)


def test_a_running_job_has_no_outcome() -> None:
    assert outcome(job(), [pod("Running")]) is None


def test_complete_is_success() -> None:
    assert outcome(job("Complete", "CompletionsReached"), []) == Outcome(JobState.SUCCESS, 0, "")


def test_deadline_exceeded_is_timed_out() -> None:
    got = outcome(job("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"), [])
    assert got == Outcome(JobState.TIMED_OUT, None, "wall time of 900 s exceeded")


def test_a_failed_main_container_is_a_failure_with_its_code_and_step() -> None:
    failed = pod(init=[terminated("00-bane", 0, "Completed")], main=[terminated("01-aegean", 3)])
    got = outcome(job("Failed", "BackoffLimitExceeded"), [failed])
    assert got is not None
    assert (got.state, got.exit_code, got.retryable) == (JobState.FAILURE, 3, False)
    assert got.reason == "step aegean (container 01-aegean) exited with code 3"


def test_a_failed_init_container_is_named_and_its_message_kept() -> None:
    failed = pod(
        init=[terminated("00-bane", 2, message="reading...\nValueError: no such HDU\n\n")],
        main=[{"name": "01-aegean", "state": {"waiting": {"reason": "PodInitializing"}}}],
    )
    got = outcome(job("Failed", "BackoffLimitExceeded"), [failed])
    assert got is not None
    assert got.exit_code == 2
    assert got.reason == "step bane (container 00-bane) exited with code 2: ValueError: no such HDU"


def test_out_of_memory_names_the_limit() -> None:
    failed = pod(main=[terminated("01-aegean", 137, "OOMKilled")])
    got = outcome(job("Failed", "BackoffLimitExceeded"), [failed])
    assert got is not None
    assert got.exit_code == 137
    assert not got.retryable
    assert "512 MB limit" in got.reason


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            {"reason": "Evicted", "message": "low on memory"},
            "Evicted: low on memory",
        ),
        (
            {
                "reason": "Evicted",
                "message": "low on memory",
                "conditions": [
                    {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet"}
                ],
            },
            "Evicted: low on memory (TerminationByKubelet)",
        ),
        (
            {
                "conditions": [
                    {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}
                ]
            },
            "PreemptionByScheduler",
        ),
        (
            {"reason": "NodeShutdown"},
            "NodeShutdown",
        ),
    ],
)
def test_a_disrupted_pod_is_a_retryable_failure(status: dict[str, Any], expected: str) -> None:
    evicted = pod(main=[terminated("01-aegean", 137)], **status)
    got = outcome(job("Failed", "BackoffLimitExceeded"), [evicted])
    assert got is not None
    assert (got.state, got.retryable, got.exit_code) == (JobState.FAILURE, True, None)
    assert expected in got.reason


def test_a_pod_deleted_by_someone_else_is_a_retryable_failure() -> None:
    deleted = pod("Running")
    deleted["metadata"]["deletionTimestamp"] = T_END
    got = outcome(job("Failed", "BackoffLimitExceeded"), [deleted])
    assert got is not None
    assert got.retryable
    assert "deleted" in got.reason


def test_pods_deleted_along_with_their_job_are_no_disruption() -> None:
    failed = pod(main=[terminated("01-aegean", 3)])
    failed["metadata"]["deletionTimestamp"] = T_END
    got = outcome(job("Failed", "BackoffLimitExceeded", deletionTimestamp=T_END), [failed])
    assert got is not None
    assert got.exit_code == 3
    assert not got.retryable


def test_a_failed_job_without_pods_is_retryable() -> None:
    got = outcome(job("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"), [])
    assert got is not None
    assert got.retryable
    assert got.exit_code is None
    assert "BackoffLimitExceeded" in got.reason


def test_elapsed_is_the_jobs_run_time() -> None:
    assert elapsed_s(job("Complete")) == 42.0
    assert elapsed_s(job("Failed", "DeadlineExceeded")) == 42.0
    assert elapsed_s(job()) is None


def test_started_once_a_container_runs_even_while_the_pod_is_pending() -> None:
    assert not has_started(job(), [])
    assert not has_started(job(), [pod("Pending")])
    running_init = pod("Pending", init=[{"name": "00-bane", "state": {"running": {}}}])
    assert has_started(job(), [running_init])
    assert has_started(job(), [pod("Running")])
    assert has_started(job("Failed", "DeadlineExceeded"), [])


# -- stale attempts ------------------------------------------------------------------------


def labelled(attempt: int, job_id: str = JOB_ID, condition: str | None = None, **meta: Any) -> dict[str, Any]:
    obj = job(condition, "BackoffLimitExceeded" if condition == "Failed" else "")
    obj["metadata"] = {
        "name": job_name(job_id, attempt),
        "labels": {LABEL_JOB: label_value(job_id), LABEL_ATTEMPT: str(attempt)},
        "annotations": {"caesar-rest.io/job-id": job_id},
        **meta,
    }
    return obj


def test_stale_attempts_are_the_live_older_ones_of_the_same_job() -> None:
    other = "11111111-2222-4333-8444-555555555555"
    jobs = [
        labelled(1),
        labelled(2, condition="Failed"),
        labelled(3, deletionTimestamp=T_END),
        labelled(4),
        labelled(5),
        labelled(6),
        labelled(1, other),
    ]
    assert stale_attempts(jobs, JOB_ID, 5) == [job_name(JOB_ID, 1), job_name(JOB_ID, 4)]
    assert stale_attempts(jobs, JOB_ID, 1) == []


def test_a_job_whose_id_hashes_alike_is_not_stale() -> None:
    impostor = labelled(1)
    impostor["metadata"]["annotations"]["caesar-rest.io/job-id"] = "someone-else"
    assert stale_attempts([impostor], JOB_ID, 2) == []


def waiting(name: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"name": name, "state": {"waiting": {"reason": reason, "message": message}}}


def test_a_container_that_cannot_start_is_found_in_step_order() -> None:
    pending = pod(
        "Pending",
        init=[waiting("00-bane", "ImagePullBackOff", "back-off pulling image")],
        main=[waiting("01-aegean", "InvalidImageName")],
    )
    got = stuck_container([pending], CONTAINERS)
    assert got is not None
    assert (got.container, got.reason, got.message) == (
        "00-bane",
        "ImagePullBackOff",
        "back-off pulling image",
    )
    assert not got.hopeless  # a registry may come back
    hopeless = stuck_container([pod("Pending", main=[waiting("01-aegean", "InvalidImageName")])], CONTAINERS)
    assert hopeless is not None
    assert hopeless.hopeless


def test_ordinary_waiting_is_not_stuck() -> None:
    pending = pod("Pending", init=[waiting("00-bane", "PodInitializing")], main=[waiting("01-aegean", "")])
    assert stuck_container([pending], CONTAINERS) is None
    deleted = pod("Pending", main=[waiting("01-aegean", "ErrImagePull")])
    deleted["metadata"]["deletionTimestamp"] = T_END
    assert stuck_container([deleted], CONTAINERS) is None
