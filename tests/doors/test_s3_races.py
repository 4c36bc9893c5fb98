"""Races on one key against the live moto server: outputs are never older than the photo.

A photo A is uploaded and its job is held (inside the crop, or at one of its writes) while B
replaces it and B's job runs; then A's job goes on. Whatever the order in which the jobs
finish, the key ends with B's outputs: crops.json, every crop and the master name B's ETag
(or, B being no photo, B's error record), and no error record or crops.json of A outlives it.
Also: a late event for an old version of a versioned photo, and two deliveries of one event
at once.

Jobs are held in threads of this process, each calling the real handler; holds sit in the
engine call (`trigger.run_job`) and in botocore's `before-parameter-build` hook of the
handler's own S3 client (before the request is sent).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from PIL import Image

from functions.s3 import trigger
from infra.local_stack import LocalContext, Stack
from tests.doors.test_s3_trigger import RATIOS, output_keys, photo, s3, stack, upload

__all__ = ["s3", "stack"]  # fixtures imported for pytest

NOT_A_PHOTO = b"\x89PNG\r\n\x1a\n but not really a PNG"
WAIT = 120  # seconds a test waits for a job to reach a hold or to finish


@dataclass
class Hold:
    """Stops the job running in thread `job` at `point` until released."""

    job: str
    point: str  # "crop" (inside the engine call) or the name of an output ("crops.json", "1x1.jpg")
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def pause(self, point: str) -> None:
        if threading.current_thread().name == self.job and point == self.point and not self.reached.is_set():
            self.reached.set()
            assert self.release.wait(WAIT), f"{self.job} was never released from {point}"


@dataclass
class Job:
    """One delivery of an event to the handler, in a thread of its own."""

    name: str
    event: dict[str, Any]
    result: list[dict[str, Any]] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> Job:
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result.extend(trigger.handler(self.event, LocalContext())["results"])
        except BaseException as e:  # reported by join()
            self.error.append(e)

    def join(self) -> dict[str, Any]:
        assert self.thread is not None
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), f"job {self.name} did not finish"
        assert not self.error, f"job {self.name} raised {self.error[0]!r}"
        [outcome] = self.result
        return outcome


@pytest.fixture
def holds(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Hold]]:
    """Holds that the handler's jobs honour: in the engine call and before each output's PUT."""
    registered: list[Hold] = []
    real_run_job = trigger.run_job

    def held_run_job(*args: Any, **kwargs: Any) -> Any:
        for hold in registered:
            hold.pause("crop")
        return real_run_job(*args, **kwargs)

    def before_put(params: dict[str, Any], **_: Any) -> None:
        for hold in registered:
            hold.pause(params["Key"].rsplit("/", 1)[-1])

    monkeypatch.setattr(trigger, "run_job", held_run_job)
    client = trigger.s3_client()
    client.meta.events.register("before-parameter-build.s3.PutObject", before_put)
    yield registered
    for hold in registered:
        hold.release.set()
    client.meta.events.unregister("before-parameter-build.s3.PutObject", before_put)


def take_event(stack: Stack) -> dict[str, Any]:
    """The S3 notification of the last upload, taken off the queue (to deliver it ourselves)."""
    sqs = stack.client("sqs")
    [message] = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1)["Messages"]
    sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return json.loads(message["Body"])


def put(s3: Any, stack: Stack, key: str, body: bytes) -> tuple[str, dict[str, Any]]:
    """Upload `body` under `key`; its ETag and its S3 notification."""
    etag = upload(s3, stack, key, body)
    return etag, take_event(stack)


def held(holds: list[Hold], job: str, point: str) -> Hold:
    hold = Hold(job, point)
    holds.append(hold)
    return hold


def reach(hold: Hold) -> None:
    assert hold.reached.wait(WAIT), f"{hold.job} never reached {hold.point}"


def stored(s3: Any, stack: Stack, key: str) -> dict[str, Any]:
    """The output objects of `key`: name -> (metadata, bytes); records parsed."""
    base = f"{stack.output_prefix}/{key}/"
    found: dict[str, Any] = {}
    for name in output_keys(s3, stack):
        got = s3.get_object(Bucket=stack.output_bucket, Key=name)
        body = got["Body"].read()
        short = name.removeprefix(base)
        found[short] = json.loads(body) if short.endswith(".json") else (got["Metadata"], body)
    return found


def assert_cropped_for(s3: Any, stack: Stack, key: str, etag: str, body: bytes) -> None:
    """Every output of `key` describes the photo `body` with ETag `etag`, and nothing else is there."""
    found = stored(s3, stack, key)
    assert sorted(found) == sorted(["crops.json", "master.jpg", *(f"{r.replace(':', 'x')}.jpg" for r in RATIOS)])
    sidecar = found["crops.json"]
    assert sidecar["source"]["etag"] == etag
    assert (sidecar["width"], sidecar["height"]) == Image.open(io.BytesIO(body)).size
    for crop in sidecar["crops"]:
        metadata, data = found[f"{crop['ratio'].replace(':', 'x')}.jpg"]
        assert metadata["source-etag"] == etag, crop["ratio"]
        assert metadata["box"] == ",".join(str(v) for v in crop["box"])
        assert list(Image.open(io.BytesIO(data)).size) == crop["size"]
    metadata, data = found["master.jpg"]
    assert metadata["source-etag"] == etag
    assert Image.open(io.BytesIO(data)).size == (sidecar["master"]["width"], sidecar["master"]["height"])


def assert_etags_recorded(s3: Any, stack: Stack, key: str) -> None:
    """crops.json records the ETag of each crop and the master as they are (the next job's If-Match)."""
    base = f"{stack.output_prefix}/{key}"
    sidecar = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=f"{base}/crops.json")["Body"].read())
    listed = s3.list_objects_v2(Bucket=stack.output_bucket, Prefix=f"{base}/")["Contents"]
    assert sidecar["etags"] == {o["Key"]: o["ETag"].strip('"') for o in listed if o["Key"].endswith(".jpg")}


# --- a photo replaced while its job runs --------------------------------------------------------

#: Where A's job is held while B replaces the photo and B's job runs to the end.
HOLD_POINTS = [
    pytest.param("crop", id="in-the-crop"),
    pytest.param("1x1.jpg", id="at-its-first-crop-write"),
    pytest.param("master.jpg", id="after-its-crop-writes"),
    pytest.param("crops.json", id="before-its-crops-json"),
]


@pytest.mark.parametrize("point", HOLD_POINTS)
def test_the_older_job_finishing_last_leaves_the_newer_photos_outputs(stack: Stack, s3: Any, holds: list[Hold],
                                                                       point: str):  # fmt: skip
    key = "race/replaced.png"
    hold_a = held(holds, "A", point)
    _, event_a = put(s3, stack, key, photo("chelsea.png"))
    job_a = Job("A", event_a).start()
    reach(hold_a)  # A has read the photo (and written up to `point`)

    etag_b, event_b = put(s3, stack, key, photo("coffee.png"))
    outcome_b = Job("B", event_b).start().join()
    assert outcome_b["status"] == "cropped"
    assert_cropped_for(s3, stack, key, etag_b, photo("coffee.png"))

    hold_a.release.set()
    outcome_a = job_a.join()  # skipped, or (having written) it cropped the photo there now: B
    assert outcome_a["status"] in ("skipped", "cropped")
    assert_cropped_for(s3, stack, key, etag_b, photo("coffee.png"))
    assert_etags_recorded(s3, stack, key)


@pytest.mark.parametrize("point", HOLD_POINTS)
def test_the_newer_job_finishing_last_keeps_its_outputs(stack: Stack, s3: Any, holds: list[Hold], point: str):
    """A held, B replaces the photo and B's job is held before its crops.json; A goes on to its
    end, then B does."""
    key = "race/interleaved.png"
    hold_a, hold_b = held(holds, "A", point), held(holds, "B", "crops.json")
    _, event_a = put(s3, stack, key, photo("chelsea.png"))
    job_a = Job("A", event_a).start()
    reach(hold_a)
    etag_b, event_b = put(s3, stack, key, photo("coffee.png"))
    job_b = Job("B", event_b).start()
    reach(hold_b)  # B's crops and master are written

    hold_a.release.set()
    job_a.join()
    hold_b.release.set()
    assert job_b.join()["status"] == "cropped"
    assert_cropped_for(s3, stack, key, etag_b, photo("coffee.png"))
    assert_etags_recorded(s3, stack, key)


def test_an_older_job_does_not_crop_over_a_newer_error_record(stack: Stack, s3: Any, holds: list[Hold]):
    key = "race/now-broken.png"
    hold_a = held(holds, "A", "crop")
    _, event_a = put(s3, stack, key, photo("chelsea.png"))
    job_a = Job("A", event_a).start()
    reach(hold_a)
    etag_b, event_b = put(s3, stack, key, NOT_A_PHOTO)
    assert Job("B", event_b).start().join()["status"] == "failed"

    hold_a.release.set()
    job_a.join()
    found = stored(s3, stack, key)
    assert list(found) == ["error.json"]  # no crops.json of the photo that is gone
    assert found["error.json"]["source"]["etag"] == etag_b


def test_an_older_job_writes_no_error_record_beside_newer_crops(stack: Stack, s3: Any, holds: list[Hold]):
    key = "race/now-fixed.png"
    hold_a = held(holds, "A", "crop")  # A is no photo: the engine refuses it once released
    _, event_a = put(s3, stack, key, NOT_A_PHOTO)
    job_a = Job("A", event_a).start()
    reach(hold_a)
    etag_b, event_b = put(s3, stack, key, photo("coffee.png"))
    assert Job("B", event_b).start().join()["status"] == "cropped"

    hold_a.release.set()
    outcome_a = job_a.join()
    assert_cropped_for(s3, stack, key, etag_b, photo("coffee.png"))  # and no error.json
    assert outcome_a["status"] == "skipped"


def test_an_older_job_does_not_delete_a_newer_error_record(stack: Stack, s3: Any, holds: list[Hold]):
    """P is no photo (error record); A fixes it but is held; B is no photo either."""
    key = "race/broken-again.png"
    _, event_p = put(s3, stack, key, NOT_A_PHOTO)
    assert Job("P", event_p).start().join()["status"] == "failed"
    hold_a = held(holds, "A", "crop")
    _, event_a = put(s3, stack, key, photo("chelsea.png"))
    job_a = Job("A", event_a).start()
    reach(hold_a)  # A has seen P's error record, the one a fixed upload removes
    etag_b, event_b = put(s3, stack, key, NOT_A_PHOTO + b"B")
    assert Job("B", event_b).start().join()["status"] == "failed"

    hold_a.release.set()
    job_a.join()
    found = stored(s3, stack, key)
    assert list(found) == ["error.json"]
    assert found["error.json"]["source"]["etag"] == etag_b


# --- repeated and concurrent events -------------------------------------------------------------


def test_a_late_event_for_an_old_version_leaves_the_newer_version_s_outputs(stack: Stack, s3: Any):
    """On a versioned bucket the old version can still be read: its late (or repeated) event
    must not bring its crops back over the newer version's."""
    s3.put_bucket_versioning(Bucket=stack.input_bucket, VersioningConfiguration={"Status": "Enabled"})
    key = "race/versioned.png"
    _, event_a = put(s3, stack, key, photo("chelsea.png"))
    # S3 names the version in the event; moto's notification leaves it out.
    [version_a] = s3.list_object_versions(Bucket=stack.input_bucket, Prefix=key)["Versions"]
    event_a["Records"][0]["s3"]["object"]["versionId"] = version_a["VersionId"]
    assert Job("A", event_a).start().join()["status"] == "cropped"
    etag_b, event_b = put(s3, stack, key, photo("coffee.png"))
    assert Job("B", event_b).start().join()["status"] == "cropped"

    late = Job("A again", event_a).start().join()
    assert (late["status"], late.get("reason")) == ("skipped", "object gone or replaced")
    assert_cropped_for(s3, stack, key, etag_b, photo("coffee.png"))


@pytest.mark.parametrize("body", [photo("chelsea.png"), NOT_A_PHOTO], ids=["photo", "not-a-photo"])
def test_two_deliveries_at_once_both_succeed_with_one_set_of_outputs(
    stack: Stack, s3: Any, monkeypatch: pytest.MonkeyPatch, body: bytes
):
    """Both deliveries pass the "already processed" check before either writes: the writes
    race (each conditional on what it saw), neither delivery fails, the outputs are one set."""
    key = "race/twice.png"
    etag, event = put(s3, stack, key, body)
    both_in = threading.Barrier(2, timeout=WAIT)
    real_run_job = trigger.run_job

    def together(*args: Any, **kwargs: Any) -> Any:
        both_in.wait()
        return real_run_job(*args, **kwargs)

    monkeypatch.setattr(trigger, "run_job", together)
    jobs = [Job(name, event).start() for name in ("first", "second")]
    outcomes = [job.join() for job in jobs]
    expected = "cropped" if body != NOT_A_PHOTO else "failed"
    assert [o["status"] for o in outcomes] == [expected, expected]
    if expected == "cropped":
        assert_cropped_for(s3, stack, key, etag, body)
    else:
        found = stored(s3, stack, key)
        assert list(found) == ["error.json"] and found["error.json"]["source"]["etag"] == etag
    again = Job("third", event).start().join()
    assert (again["status"], again.get("reason")) == ("skipped", "already processed")
