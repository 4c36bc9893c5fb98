"""Export a tiny real model to TFLite (float16 and full int8) and check dtypes and parity."""

import time

import numpy as np
import pytest
from skimage import data

from autocrop.preprocess import letterbox
from autocrop.saliency import TFLiteModel
from model_export.quantize import RECIPES, convert, latency_ms, pearson, write
from training.backbone import DEFAULT_WEIGHTS, load_torchvision_weights
from training.saliency_model import SaliencyNetConfig, build_saliency_net

CANVAS = 64  # tiny, so conversion is quick; same architecture as shipped


def _photos():
    return [getattr(data, n)() for n in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")]


@pytest.fixture(scope="module")
def tiny_model():
    model = build_saliency_net(SaliencyNetConfig(canvas=CANVAS))
    if DEFAULT_WEIGHTS.exists():
        load_torchvision_weights(model, DEFAULT_WEIGHTS)
    return model


@pytest.fixture(scope="module")
def canvases():
    return [letterbox(p, CANVAS)[0] for p in _photos()]


def _rep(canvases):
    return lambda: ([c[None]] for c in canvases)


@pytest.mark.parametrize("recipe", ["float16", "int8"])
def test_export_parity_and_dtypes(tmp_path, tiny_model, canvases, recipe):
    path = write(tmp_path / f"tiny_{recipe}.tflite", convert(tiny_model, RECIPES[recipe], _rep(canvases)))
    runner = TFLiteModel(path, num_threads=1)
    expected_dtype = np.int8 if recipe == "int8" else np.float32
    assert runner._input["dtype"] == expected_dtype
    assert runner.input_shape == (1, CANVAS, CANVAS, 3)
    ccs = []
    for c in canvases:
        ref = np.asarray(tiny_model(c[None], training=False))[0, ..., 0]
        got = next(iter(runner(c[None]).values()))[0, ..., 0]
        assert got.shape == ref.shape == (CANVAS // 4, CANVAS // 4)
        ccs.append(pearson(ref, got))
    # float16 weights are near-lossless; int8 of an untrained decoder is looser but must track.
    assert np.mean(ccs) >= (0.99 if recipe == "float16" else 0.9), ccs
    runs: list[int] = []
    started = time.perf_counter()
    timed = latency_ms(lambda: runs.append(len(runner(canvases[0][None]))), warmup=1, repeats=3)
    wall_ms = (time.perf_counter() - started) * 1000
    # One warm-up and three timed runs, all inside the test's clock: the median and the slower
    # run each take at least the median, so twice the median fits in it (in ms, rounded to 0.01).
    assert len(runs) == 4
    assert 0 < timed["median"] <= timed["p90"] and 2 * timed["median"] <= wall_ms + 0.02, (timed, wall_ms)


def test_pearson_known_answers():
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert pearson(a, a) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)
    assert pearson(a, np.ones_like(a)) == 0.0
