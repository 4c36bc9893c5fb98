"""A job that dies after its writes, a photo replaced by a file that is no photo, keys that
crowd one folder, Batch Operations reports: on the live moto server, the end state describes the
photo in the bucket now and nothing is lost.

Each case was found by trying to break "never older than what is stored" and "nothing lost"
with faults the happy path never meets (a 503 on the job's last HEAD, a failed delete, a
retried delivery that the records call done).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from functions.s3 import trigger
from functions.s3.events import SourceObject
from functions.s3.outputs import output_base
from functions.settings import get_settings
from infra.local_stack import Stack
from tests.doors.test_s3_faults import s3_error
from tests.doors.test_s3_trigger import photo, s3, stack, upload

__all__ = ["s3", "stack"]  # fixtures imported for pytest

NOT_A_PHOTO = b"\x89PNG\r\n\x1a\n but not really a PNG"


def run(stack: Stack, key: str, etag: str | None, size: int | None = None) -> dict[str, Any]:
    """One delivery of the upload `key` (ETag `etag`; None: a Batch Operations task)."""
    settings = get_settings()
    obj = SourceObject(bucket=stack.input_bucket, key=key, size=size, etag=etag or "")
    return trigger.process_object(obj, settings, trigger.crop_options(settings), trigger.s3_client())


def described(s3: Any, stack: Stack) -> dict[str, str]:
    """Each output object -> the ETag of the photo it says it was made from."""
    found = {}
    for item in s3.list_objects_v2(Bucket=stack.output_bucket).get("Contents", []):
        got = s3.get_object(Bucket=stack.output_bucket, Key=item["Key"])
        if item["Key"].endswith(".json"):
            found[item["Key"]] = json.loads(got["Body"].read())["source"]["etag"]
        else:
            found[item["Key"]] = got["Metadata"]["source-etag"]
    return found


def test_a_retried_job_that_died_after_its_writes_repairs_an_older_photos_outputs(stack: Stack, s3: Any) -> None:
    """A cropped; B replaces it and writes everything; A is put back meanwhile (its event is
    skipped: crops.json still names A); B's last photo check fails. B's retry finds crops.json
    naming B, but the photo is A: it crops A, so the outputs end as A's."""
    key = "revert/photo.png"
    a = upload(s3, stack, key, photo("chelsea.png"))
    assert run(stack, key, a)["status"] == "cropped"
    b = upload(s3, stack, key, photo("coffee.png"))
    client = trigger.s3_client()
    first_put, release, wrote_sidecar = threading.Event(), threading.Event(), threading.Event()

    def before_put(params: dict[str, Any], **_: Any) -> None:
        if threading.current_thread().name == "B":
            name = params["Key"].rsplit("/", 1)[-1]
            if name == "1x1.jpg" and not first_put.is_set():
                first_put.set()
                release.wait(60)
            if name == "crops.json":
                wrote_sidecar.set()

    def failing_head(request: Any, **_: Any) -> Any:
        if wrote_sidecar.is_set() and stack.input_bucket in request.url and threading.current_thread().name == "B":
            return s3_error(503, "SlowDown", "injected: the job dies at its last check")
        return None

    client.meta.events.register("before-parameter-build.s3.PutObject", before_put)
    client.meta.events.register("before-send.s3.HeadObject", failing_head)
    errors: list[BaseException] = []

    def job_b() -> None:
        try:
            run(stack, key, b)
        except BaseException as e:  # the injected 503, as Lambda would see it
            errors.append(e)

    thread = threading.Thread(target=job_b, name="B")
    thread.start()
    assert first_put.wait(60)
    assert upload(s3, stack, key, photo("chelsea.png")) == a  # A put back, byte for byte
    assert run(stack, key, a)["reason"] == "already processed"
    release.set()
    thread.join(60)
    assert errors, "the injected fault should have failed B's first delivery"
    client.meta.events.unregister("before-send.s3.HeadObject", failing_head)
    client.meta.events.unregister("before-parameter-build.s3.PutObject", before_put)
    assert run(stack, key, b)["status"] == "cropped"  # the retry: records say B, the photo is A
    assert set(described(s3, stack).values()) == {a}


def test_an_error_record_left_by_a_failed_delete_goes_on_the_retry(stack: Stack, s3: Any) -> None:
    key = "fixed/photo.png"
    a = upload(s3, stack, key, NOT_A_PHOTO)
    assert run(stack, key, a)["status"] == "failed"
    b = upload(s3, stack, key, photo("coffee.png"))
    client = trigger.s3_client()

    def failing_delete(request: Any, **_: Any) -> Any:
        return s3_error(503, "SlowDown", "injected")

    client.meta.events.register("before-send.s3.DeleteObject", failing_delete)
    try:
        run(stack, key, b)
    except Exception:  # noqa: BLE001 - the injected fault
        pass
    client.meta.events.unregister("before-send.s3.DeleteObject", failing_delete)
    assert run(stack, key, b)["reason"] == "already processed"
    outputs = described(s3, stack)
    assert not any(k.endswith("error.json") for k in outputs), outputs
    assert set(outputs.values()) == {b}


def test_a_photo_replaced_by_a_file_that_is_no_photo_leaves_only_its_error_record(stack: Stack, s3: Any) -> None:
    key = "c/photo.png"
    a = upload(s3, stack, key, photo("chelsea.png"))
    assert run(stack, key, a)["status"] == "cropped"
    b = upload(s3, stack, key, NOT_A_PHOTO)
    assert run(stack, key, b)["status"] == "failed"
    base = output_base(key, "crops")
    assert described(s3, stack) == {f"{base}/error.json": b}


def test_keys_dot_and_underscore_keep_outputs_of_their_own(stack: Stack, s3: Any) -> None:
    assert output_base(".", "crops") != output_base("_", "crops")
    etags = {key: upload(s3, stack, key, photo(name)) for key, name in ((".", "chelsea.png"), ("_", "coffee.png"))}
    for key, etag in etags.items():
        assert run(stack, key, etag)["status"] == "cropped"
    for key, etag in etags.items():
        sidecar = s3.get_object(Bucket=stack.output_bucket, Key=f"{output_base(key, 'crops')}/crops.json")
        assert json.loads(sidecar["Body"].read())["source"]["etag"] == etag


def test_a_photo_under_a_key_ending_in_a_slash_is_cropped_and_an_empty_folder_is_not(stack: Stack, s3: Any) -> None:
    data = photo("chelsea.png")
    etag = upload(s3, stack, "album/cat.png/", data)
    assert run(stack, "album/cat.png/", etag, len(data))["status"] == "cropped"
    folder = upload(s3, stack, "album/", b"")
    assert run(stack, "album/", folder, 0)["reason"] == "folder marker"
    assert run(stack, "album/", None)["reason"] == "folder marker"  # a task: learnt from the GET


def test_a_batch_task_for_a_replaced_photo_succeeds_without_cropping_the_old_one(stack: Stack, s3: Any, monkeypatch: Any) -> None:
    """A Batch Operations task whose photo was replaced since the manifest is reported as done
    (the newer upload's own event crops it), not as a missing object."""
    from aws_lambda_powertools.utilities.data_classes import S3BatchOperationEvent

    from functions.s3.batch import task_result

    key = "batch/photo.png"
    upload(s3, stack, key, photo("chelsea.png"))
    ran: list[int] = []
    real = trigger.run_job

    def replacing_job(*args: Any, **kwargs: Any) -> Any:
        ran.append(1)
        upload(s3, stack, key, photo("coffee.png"))  # replaced while this task crops
        return real(*args, **kwargs)

    monkeypatch.setattr(trigger, "run_job", replacing_job)
    event = {"invocationSchemaVersion": "1.0", "invocationId": "inv",
             "job": {"id": "job"}, "tasks": [{"taskId": "t1", "s3Key": key, "s3VersionId": None,
                                              "s3BucketArn": f"arn:aws:s3:::{stack.input_bucket}"}]}  # fmt: skip
    [task] = S3BatchOperationEvent(event).tasks
    settings = get_settings()
    result = task_result(task, lambda obj: trigger.process_object(obj, settings, trigger.crop_options(settings),
                                                                     trigger.s3_client()))  # fmt: skip
    assert ran and result.result_code == "Succeeded", result
