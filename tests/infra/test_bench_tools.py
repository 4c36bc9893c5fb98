"""The benchmarks' own tools: the peer worker (smartcrop.js on sharp) answers, the cost model adds up."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.engine.test_decode import encode_image, quadrants


def test_cost_model_prices_gb_seconds_at_the_arm64_list_price() -> None:
    from benchmarks.cost_model import GB_SECOND_ARM64, PER_MILLION_REQUESTS, per_million

    gb_s, usd = per_million(1000.0, 1024)  # one second at 1 GB
    assert gb_s == pytest.approx(1.0)
    assert usd == pytest.approx(1e6 * GB_SECOND_ARM64 + PER_MILLION_REQUESTS)
    assert per_million(500.0, 2048)[0] == pytest.approx(1.0)


@pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None, reason="needs Node.js and npm")
def test_the_peer_worker_crops_every_ratio(tmp_path: Path) -> None:
    """bench_peer's Node.js worker, installed from its pinned package-lock: four boxes of the
    asked ratios inside the photo, and four JPEGs with crops=true."""
    from benchmarks.bench_peer import RATIOS, Peer, install_peer

    install_peer()
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(encode_image(quadrants(640, 480), "JPEG"))
    peer = Peer({min(__import__("os").sched_getaffinity(0))}, concurrency=1)
    try:
        assert peer.hello["sharp"] == "0.34.5"
        boxes_only = peer.run(photo, crops=False)
        started = time.perf_counter()
        answer = peer.run(photo, crops=True)
        wall_ms = (time.perf_counter() - started) * 1000
    finally:
        peer.close()
    assert len(boxes_only["boxes"]) == len(RATIOS) and boxes_only["bytes"] == []
    for (x, y, w, h), ratio in zip(answer["boxes"], RATIOS, strict=True):
        rw, rh = (int(v) for v in ratio.split(":"))
        assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 480
        assert w / h == pytest.approx(rw / rh, rel=0.02)
    assert len(answer["bytes"]) == len(RATIOS) and min(answer["bytes"]) > 0
    # The peer times itself inside the call the test times: within it, and in milliseconds
    # (four resized ~2 MP JPEGs take well over 1 ms; a figure in seconds would not).
    assert 1 <= answer["ms"] <= wall_ms, (answer["ms"], wall_ms)
