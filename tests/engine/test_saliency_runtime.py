"""The shipped saliency model: card matches file, maps are sensible, runtime is thread-safe."""

import hashlib
import json
import threading

import numpy as np
import pytest
from skimage import data

from autocrop.preprocess import letterbox, letterbox_geometry, unletterbox
from autocrop.saliency import (DEFAULT_SALIENCY_MODEL, CentreBiasSaliency, LiteRTSaliency,
                               centre_bias, load_saliency)

CARD = json.loads(DEFAULT_SALIENCY_MODEL.with_suffix(".json").read_text())


def test_card_describes_the_shipped_file():
    blob = DEFAULT_SALIENCY_MODEL.read_bytes()
    assert hashlib.sha256(blob).hexdigest() == CARD["sha256"]
    assert len(blob) == CARD["size_bytes"] <= 8_000_000
    assert CARD["input"]["shape"] == [1, 256, 256, 3]
    val = CARD["validation"]["model"]
    base = CARD["validation"]["centre_bias_baseline"]
    assert val["combined"]["cc"] >= 0.65 and val["combined"]["nss"] >= 1.8
    for s in ("osie", "eyecrowd"):
        assert val[s]["cc"] >= base[s]["cc"] + 0.15
    assert CARD["export"]["variants"][CARD["quantization"]]["parity_cc_mean"] >= 0.99
    assert CARD["commands"] and CARD["commit"]


def test_letterbox_round_trip_keeps_geometry():
    for h, w in [(480, 640), (640, 480), (100, 1000), (1, 1), (256, 256)]:
        box = letterbox_geometry(h, w)
        assert max(box.w, box.h) == 256 and box.x + box.w <= 256 and box.y + box.h <= 256
        rgb = np.zeros((h, w, 3), np.uint8)
        canvas, box2 = letterbox(rgb)
        assert canvas.shape == (256, 256, 3) and box2 == box
        back = unletterbox(np.ones((64, 64), np.float32), box, h, w)
        assert back.shape == (h, w)


@pytest.fixture(scope="module")
def model():
    return load_saliency()


def test_shipped_model_loads_not_the_fallback(model):
    assert isinstance(model, LiteRTSaliency)
    members = [m["name"] for m in CARD.get("ensemble", {}).get("members", [])]
    assert model.name == "+".join([CARD["name"], *members])  # results name every network that ran


def test_map_is_upright_size_in_unit_range_and_finds_the_face(model):
    img = data.astronaut()  # face roughly x 170-260, y 60-180 in 512x512
    sal = model.predict(img)
    assert sal.shape == img.shape[:2] and sal.dtype == np.float32
    assert sal.min() >= 0 and sal.max() == pytest.approx(1.0)
    face = sal[60:180, 170:260].mean()
    assert face > 3 * sal.mean()


def test_portrait_and_landscape_inputs_are_not_distorted(model):
    img = data.chelsea()
    wide = model.predict(img)
    tall = model.predict(np.ascontiguousarray(np.rot90(img)))
    # rotating the photo rotates the map (same content, other aspect ratio)
    assert np.corrcoef(np.rot90(wide).ravel(), tall.ravel())[0, 1] > 0.8


def test_features_come_from_the_same_pass(model):
    img = data.coffee()  # 400x600
    out = model.predict_with_features(img)
    assert out.features.shape == (16, 16, 96) and np.isfinite(out.features).all()
    assert out.letterbox == letterbox_geometry(400, 600) and out.letterbox.h == 171


def test_missing_model_falls_back_labelled(tmp_path):
    fallback = load_saliency(str(tmp_path / "missing.tflite"))
    assert isinstance(fallback, CentreBiasSaliency) and "fallback" in fallback.name
    m = fallback.predict(np.zeros((30, 40, 3), np.uint8))
    np.testing.assert_allclose(m, centre_bias(30, 40))
    assert m[15, 20] > m[0, 0]


def concurrent_mismatches(model, rounds: int = 6) -> list[int]:
    """The photos whose map, predicted from six threads at once, differs from its serial map."""
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    expected = [model.predict(p) for p in photos]
    errors = []

    def work(i):
        for k in range(rounds):
            j = (i + k) % len(photos)
            got = model.predict(photos[j])
            if not np.array_equal(got, expected[j]):
                errors.append(j)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_interpreter_is_safe_under_threads(model):
    """LiteRT interpreters are not thread-safe: without the runtime's lock, concurrent
    invocations on one interpreter corrupt each other's outputs (or crash)."""
    assert not concurrent_mismatches(model)


def _flipping_copy(tmp_path, flip: bool = True):
    """The shipped model beside a copy of its card that turns test-time flipping on."""
    model = tmp_path / "saliency.tflite"
    model.write_bytes(DEFAULT_SALIENCY_MODEL.read_bytes())
    card = json.loads(DEFAULT_SALIENCY_MODEL.with_suffix(".json").read_text())
    card["test_time_flip"] = flip
    card.pop("ensemble", None)  # the main network alone: flipping is what this copy tests
    model.with_suffix(".json").write_text(json.dumps(card))
    return LiteRTSaliency(model)


def test_test_time_flip_averages_the_mirrored_pass(tmp_path, model):
    """With the card's test_time_flip the map is the mean of the photo's pass and its mirror
    image's pass mirrored back: so a mirrored photo gets exactly the mirrored map (the
    canvas's free width is even here), which one pass does not promise."""
    flipping = _flipping_copy(tmp_path)
    assert flipping.flip and not model.flip
    rgb = data.astronaut()[:, :480]  # 512x480: the content fills the canvas's height, free width even
    box = letterbox_geometry(*rgb.shape[:2], flipping.canvas)
    assert (flipping.canvas - box.w) % 2 == 0
    flipped_map = flipping.predict(rgb)
    mirror_map = flipping.predict(np.ascontiguousarray(rgb[:, ::-1]))
    np.testing.assert_allclose(mirror_map[:, ::-1], flipped_map, atol=1e-5)
    one_pass = model.predict(rgb)
    assert np.abs(model.predict(np.ascontiguousarray(rgb[:, ::-1]))[:, ::-1] - one_pass).max() > 1e-3
    # and it is the two passes' mean, not some other map
    canvas, box = letterbox(rgb, model.canvas)
    a = model.predict_canvas(canvas[None])[0]
    b = model.predict_canvas(np.ascontiguousarray(canvas[None, :, ::-1]))[0][:, ::-1]
    expected = model.prior.apply(unletterbox(0.5 * (a + b), box, *rgb.shape[:2]))
    np.testing.assert_allclose(flipped_map, expected, atol=1e-5)
    assert not _flipping_copy(tmp_path / "off" if (tmp_path / "off").mkdir() is None else tmp_path, False).flip
