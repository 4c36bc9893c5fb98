"""The API under concurrent load: no 5xx, and shared models give every request its own answer.

LiteRT interpreters and OpenCV's YuNet network are not thread-safe, and the API runs sync
endpoints in a thread pool that shares one copy of each model per process. Each model holds
a lock; these tests would catch a missing one: concurrent calls must give exactly the answers
sequential calls give (the saliency interpreter's own test is
tests/engine/test_saliency_runtime.py::test_interpreter_is_safe_under_threads).

The full load test is a rerunnable script: `python -m benchmarks.load_api` (500
requests at concurrency 8); here a smaller run of the same code asserts zero 5xx.
"""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import skimage
from autocrop.faces import YuNetDetector, load_face_detector
from PIL import Image
from skimage import data

from benchmarks.load_api import load_test
from functions.settings import get_settings
from infra.local_stack import start_api

PHOTOS = Path(skimage.__file__).parent / "data"


def bgr(image: np.ndarray, scale: float) -> np.ndarray:
    size = (max(8, round(image.shape[1] * scale)), max(8, round(image.shape[0] * scale)))
    return np.ascontiguousarray(np.asarray(Image.fromarray(image).resize(size))[..., ::-1])


def hammer(work: list[Any], call: Any, expected: list[Any], threads: int = 8, rounds: int = 4
           ) -> list[int]:  # fmt: skip
    """Run `call` on every item from `threads` threads at once; indexes whose answer differed."""
    wrong: list[int] = []
    start = threading.Barrier(threads)

    def worker(offset: int) -> None:
        start.wait()
        for k in range(rounds * len(work)):
            i = (offset + k) % len(work)
            if not same(call(work[i]), expected[i]):
                wrong.append(i)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return wrong


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and np.array_equal(a, b)
    return bool(a == b)


def test_face_detector_is_safe_under_threads():
    """YuNet's input size is state on the shared network: one thread's size must never meet
    another thread's image."""
    detector = load_face_detector()
    assert isinstance(detector, YuNetDetector)
    images = [bgr(data.astronaut(), s) for s in (1.0, 0.6, 1.4)] + [
        bgr(np.asarray(Image.open(Path(skimage.__file__).parent / "data" / "chelsea.png")), 1.0)
    ]
    expected = [detector.detect(im, 0.6) for im in images]
    assert len(expected[0]) >= 1  # the astronaut's face is found
    assert not hammer(images, lambda im: detector.detect(im, 0.6), expected)


def test_learned_ranker_is_safe_under_threads():
    from autocrop.ranker import LearnedRanker
    from autocrop.ranking import DEFAULT_RANKER_MODEL

    assert Path(DEFAULT_RANKER_MODEL).is_file(), "the learned ranker ships with the package"
    ranker = LearnedRanker()
    width = int(ranker._score.get_input_details()["descriptor"]["shape_signature"][-1])
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(n, width)).astype(np.float32) for n in (3, 40, 7, 120)]
    expected = [ranker.score_descriptors(b) for b in batches]
    assert not hammer(batches, ranker.score_descriptors, expected)


# --- through the API, under uvicorn -------------------------------------------------------------


@pytest.fixture(scope="module")
def api_url() -> Any:
    get_settings.cache_clear()
    server, url = start_api("127.0.0.1", 0)
    yield url
    server.should_exit = True


def answer(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return [(c["ratio"], c["box"], c["score"], c["faces_kept"]) for c in response.json()["crops"]]


def test_concurrent_api_requests_get_the_answers_sequential_ones_get(api_url: str):
    """Photos of different sizes (faces, none, upscaled face pass) at concurrency 8 through
    uvicorn's thread pool: every answer equals the one the same photo gets alone."""
    photos = [(PHOTOS / n).read_bytes() for n in ("astronaut.png", "chelsea.png", "coffee.png",
                                                 "motorcycle_left.png")]  # fmt: skip
    small = io.BytesIO()
    Image.open(PHOTOS / "astronaut.png").resize((256, 256)).save(small, "PNG")
    photos.append(small.getvalue())
    query = "/v1/crop?ratios=1:1,16:9,9:16"
    with httpx.Client(base_url=api_url, timeout=120) as client:
        expected = [answer(client.post(query, content=p)) for p in photos]
        jobs = [i % len(photos) for i in range(48)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(lambda i: answer(client.post(query, content=photos[i])), jobs))
    wrong = [i for i, g in zip(jobs, got, strict=True) if g != expected[i]]
    assert not wrong, f"{len(wrong)} of {len(jobs)} concurrent answers differ"


def test_bounded_load_has_no_5xx():
    """The load script's own code, smaller: a real uvicorn process, 64 requests, 8 at a time."""
    report = load_test(n_requests=64, concurrency=8)
    summary = report.to_dict()
    print(f"\nload: {summary}")
    assert report.requests == 64
    assert report.server_errors == 0 and not report.transport_errors
    assert not report.unexpected, report.unexpected
    assert not report.inconsistent
    assert summary["statuses"].get("200", 0) >= 32
    assert report.server_peak_rss_mb is not None and report.server_peak_rss_mb < 1024
