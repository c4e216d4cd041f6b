"""The api's pure domain: v1 job requests, input references, response shapes, projection."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from caesar_api.domain.errors import ApiError, shown
from caesar_api.domain.files import display_name, upload_extension
from caesar_api.domain.jobs import file_id_from_reference, parse_job_request
from caesar_api.domain.projection import transition_fields
from caesar_api.domain.responses import (
    file_record,
    job_status,
    size_mib,
    submit_response,
    upload_response,
    v1_date,
)
from caesar_api.domain.status import status_message
from caesar_api.service.results import job_dir as results_dir
from caesar_common.events import JobStateChanged, OutputFile
from caesar_common.jobstate import JobState
from caesar_common.layout import attempt_dir

FID = "67a49bf7555b41739095681bf52a1f99"
OTHER = "250fdf5ed6a044888cf4406338f9e73b"
JOB = "69ca62d7-5098-4fe7-a675-63895a2d06b1"
NOW = datetime(2020, 4, 24, 14, 5, 24, 761766, tzinfo=UTC)


def rejected(body: object) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_job_request(body)
    assert info.value.http_status == 400
    return info.value


# -- request parsing ---------------------------------------------------------------------


def test_path_form_keeps_options_and_drops_non_options() -> None:
    req = parse_job_request(
        {
            "app": "caesar",
            "job_inputs": {
                "inputfile": f"/opt/caesar-rest/data/{FID}.fits",
                "run": True,
                "no-logredir": True,
                "envfile": "/home/user/setvars.sh",
                "no-mpi": True,
            },
        }
    )
    assert req.app == "caesar"
    assert req.file_id == FID
    assert req.options == {"no-logredir": True, "no-mpi": True}
    assert req.tag == ""
    # Echo: as given, input replaced by its uuid, the ignored envfile not repeated.
    assert req.echo_inputs == {"inputfile": FID, "run": True, "no-logredir": True, "no-mpi": True}


def test_data_inputs_form() -> None:
    req = parse_job_request(
        {"app": "aegean", "job_inputs": {"seedthr": 5}, "data_inputs": FID, "tag": "run1"}
    )
    assert (req.app, req.file_id, req.tag) == ("aegean", FID, "run1")
    assert req.options == {"seedthr": 5}
    assert req.echo_inputs == {"seedthr": 5, "inputfile": FID}


def test_both_forms_agreeing_are_fine_disagreeing_are_not() -> None:
    same = parse_job_request({"app": "a", "job_inputs": {"inputfile": FID}, "data_inputs": f"x/{FID}.fits"})
    assert same.file_id == FID
    error = rejected({"app": "a", "job_inputs": {"inputfile": FID}, "data_inputs": OTHER})
    assert "different files" in error.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "Invalid request data!"),
        ([], "Invalid request data!"),
        ("text", "Invalid request data!"),
        ({}, "Invalid request data!"),
        ({"job_inputs": {}, "data_inputs": FID}, "No app name found in request!"),
        ({"app": "", "job_inputs": {}, "data_inputs": FID}, "No app name found in request!"),
        ({"app": 3, "job_inputs": {}, "data_inputs": FID}, "app must be a string"),
        ({"app": "aegean", "data_inputs": FID}, "No job inputs found in request!"),
        ({"app": "aegean", "job_inputs": [1], "data_inputs": FID}, "job_inputs must be an object"),
        ({"app": "aegean", "job_inputs": {}}, "No input file given"),
        ({"app": "aegean", "job_inputs": {}, "data_inputs": 5}, "must be a file uuid string"),
        ({"app": "aegean", "job_inputs": {}, "data_inputs": FID, "tag": 1}, "tag must be a string"),
        (
            {"app": "aegean", "job_inputs": {}, "data_inputs": FID, "tag": "x" * 300},
            "tag longer than",
        ),
        ({"app": "aegean", "job_inputs": {"inputfile": "/etc/passwd"}}, "Invalid input file"),
    ],
)
def test_malformed_requests_are_rejected(body: object, message: str) -> None:
    assert message in rejected(body).message


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (FID, FID),
        (f"{FID}.fits", FID),
        (f"/opt/caesar-rest/data/{FID}.fits", FID),
        (f"C:\\data\\{FID}.png", FID),
        (f"../../{FID}.fits", FID),
        ("/etc/passwd", None),
        ("../../etc/passwd", None),
        (f"{FID}", FID),
        (f"{FID.upper()}.fits", None),
        (f"{FID}.fits/..", None),
        (f"{FID}x.fits", None),
        (f"{FID}.", None),
        ("", None),
    ],
)
def test_input_reference_uses_only_the_file_name(reference: str, expected: str | None) -> None:
    assert file_id_from_reference(reference) == expected


def test_bad_reference_is_not_echoed_whole() -> None:
    error = rejected({"app": "a", "job_inputs": {"inputfile": "/x/" + "A" * 10_000}})
    assert len(error.message) < 300


def test_shown_cuts_and_masks() -> None:
    assert shown("abc") == "abc"
    assert shown("a\nb\x00c") == "a?b?c"
    assert shown("x" * 1000).endswith("...")
    assert len(shown("x" * 1000)) == 67


# -- uploads -----------------------------------------------------------------------------

ALLOWED = ("fits", "png", "jpg", "jpeg", "gif")


def test_display_name_keeps_last_component_without_control_characters() -> None:
    assert display_name("C:\\data\\map.fits") == "map.fits"
    assert display_name("../../etc/map\x00.fits") == "map.fits"
    assert len(display_name("a" * 1000 + ".fits")) == 255


def test_upload_extension() -> None:
    assert upload_extension("Map.FITS", ALLOWED) == "fits"
    assert upload_extension("a.b.jpeg", ALLOWED) == "jpeg"
    with pytest.raises(ApiError) as info:
        upload_extension("evil.sh", ALLOWED)
    assert info.value.http_status == 415
    assert info.value.message.startswith("File format not allowed, allowed file types are: {")
    with pytest.raises(ApiError) as info:
        upload_extension("noextension", ALLOWED)
    assert info.value.http_status == 415
    with pytest.raises(ApiError) as info:
        upload_extension("", ALLOWED)
    assert info.value.http_status == 400


# -- response shapes ---------------------------------------------------------------------


def file_doc() -> dict[str, Any]:
    return {
        "_id": FID,
        "owner": "anonymous",
        "filename_orig": "VGPS_cont_MOS017.fits",
        "ext": "fits",
        "size_bytes": 4201840,
        "sha256": "0" * 64,
        "tag": "",
        "uploaded_at": NOW,
    }


def job_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": JOB,
        "owner": "anonymous",
        "app": "aegean",
        "params": {"seedthr": 5.0},
        "input": {"file_id": FID, "ext": "fits"},
        "tag": "run1",
        "submitted_at": NOW,
        "state": "PENDING",
        "attempt": 0,
        "retryable": False,
        "reason": "",
        "exit_code": None,
        "elapsed_s": None,
        "pid": None,
        "cancel_requested_at": None,
    }
    doc.update(overrides)
    return doc


def test_v1_date_is_naive_utc_with_microseconds() -> None:
    assert v1_date(NOW) == "2020-04-24T14:05:24.761766"
    assert v1_date(datetime(2020, 1, 1, tzinfo=UTC)) == "2020-01-01T00:00:00.000000"
    assert v1_date(None) == ""


def test_upload_and_file_record_shapes() -> None:
    body = upload_response(file_doc())
    assert body == {
        "date": "2020-04-24T14:05:24.761766",
        "filename_orig": "VGPS_cont_MOS017.fits",
        "format": "fits",
        "size": size_mib(4201840),
        "status": "File uploaded with success",
        "tag": "",
        "uuid": FID,
    }
    assert abs(body["size"] - 4.00718) < 1e-4
    assert set(file_record(file_doc())) == {
        "fileid",
        "filename_orig",
        "fileext",
        "filesize",
        "filedate",
        "tag",
    }


def test_submit_response_shape() -> None:
    body = submit_response(job_doc(), {"inputfile": FID, "seedthr": 5})
    assert body == {
        "app": "aegean",
        "job_id": JOB,
        "job_inputs": {"inputfile": FID, "seedthr": 5},
        "data_inputs": FID,
        "state": "PENDING",
        "status": "Job submitted with success",
        "submit_date": "2020-04-24T14:05:24.761766",
        "tag": "run1",
    }


def test_status_of_a_successful_job() -> None:
    body = job_status(job_doc(state="SUCCESS", exit_code=0, elapsed_s=27.3435878754, pid=11539, attempt=1))
    assert body == {
        "elapsed_time": "27.3435878754",
        "exit_status": 0,
        "exit_code": 0,
        "job_id": JOB,
        "pid": "11539",
        "state": "SUCCESS",
        "status": "Process terminated with success",
        "tag": "run1",
    }


def test_status_of_a_pending_job_has_empty_measurements() -> None:
    body = job_status(job_doc())
    assert (body["elapsed_time"], body["pid"], body["exit_code"]) == ("", "", None)
    assert body["state"] == "PENDING"


def test_status_mentions_a_pending_cancel() -> None:
    body = job_status(job_doc(state="QUEUED", cancel_requested_at=NOW))
    assert body["status"].startswith("Cancel requested")
    done = job_status(job_doc(state="CANCELED", cancel_requested_at=NOW))
    assert done["status"] == "Job canceled by the user"


@pytest.mark.parametrize(
    ("state", "exit_code", "reason", "expected"),
    [
        (JobState.QUEUED, None, "", "Job is queued"),
        (JobState.RUNNING, None, "", "Job is running"),
        (JobState.SUCCESS, 0, "", "Process terminated with success"),
        (JobState.FAILURE, 3, "", "Process terminated with return code 3"),
        (JobState.FAILURE, -9, "", "Process terminated with SIG 9"),
        (JobState.FAILURE, None, "runner lost", "Process failed: runner lost"),
        (JobState.ABORTED, None, "input missing", "Job aborted: input missing"),
    ],
)
def test_status_messages(state: JobState, exit_code: int | None, reason: str, expected: str) -> None:
    assert status_message(state, exit_code=exit_code, reason=reason) == expected


def test_every_state_has_a_message() -> None:
    for state in JobState:
        assert status_message(state)


# -- projection --------------------------------------------------------------------------


def event(state: JobState, attempt: int = 1, **kw: Any) -> JobStateChanged:
    return JobStateChanged(
        job_id=JOB,
        owner="anonymous",
        app="aegean",
        attempt=attempt,
        state=state,
        changed_at=NOW,
        **kw,
    )


def test_transition_keeps_values_a_later_event_does_not_repeat() -> None:
    running = transition_fields(
        event(JobState.RUNNING, pid=42, runner_id="r1", pool="local"), new_attempt=True
    )
    assert running["pid"] == 42
    assert running["state"] == "RUNNING"
    success = transition_fields(
        event(
            JobState.SUCCESS,
            exit_code=0,
            elapsed_s=2.5,
            outputs=[OutputFile(name="out.txt", size_bytes=3)],
        ),
        new_attempt=False,
    )
    assert "pid" not in success  # same attempt: the pid stays
    assert success["exit_code"] == 0
    assert success["outputs"] == [{"name": "out.txt", "size_bytes": 3, "sha256": ""}]


def test_a_new_attempt_clears_the_previous_measurements() -> None:
    fields = transition_fields(event(JobState.QUEUED, attempt=2), new_attempt=True)
    assert fields["attempt"] == 2
    assert fields["exit_code"] is None
    assert fields["pid"] is None
    assert fields["outputs"] == []


def test_a_withdrawn_retry_shows_the_earlier_attempts_outputs(tmp_path: Path) -> None:
    """The closing event of a withdrawn retry points the results at the attempt that ran."""
    closing = event(
        JobState.SUCCESS, attempt=2, result_attempt=1, outputs=[OutputFile(name="cat.fits", size_bytes=1)]
    )
    fields = transition_fields(closing, new_attempt=True)
    assert (fields["attempt"], fields["result_attempt"]) == (2, 1)
    job = {"_id": JOB, "owner": "anonymous", **fields}
    ran = attempt_dir(tmp_path, "anonymous", JOB, 1)
    ran.mkdir(parents=True)
    assert results_dir(tmp_path, job) == ran
    # An ordinary outcome resets it: the files are its own attempt's.
    later = transition_fields(event(JobState.SUCCESS, attempt=3), new_attempt=True)
    assert later["result_attempt"] is None
