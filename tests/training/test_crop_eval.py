"""training.crop_eval's methods on photos with a known answer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from autocrop import CropOptions
from tests.shared_data import DATA, needs_data
from training.crop_eval import box_count, centre_cropper, croppers, fixation_integral
from training.datasets import FixationRecord


def test_the_density_ceiling_follows_the_fixations(tmp_path: Path) -> None:
    """The engine run on the human fixation density puts a 9:16 box over the fixations,
    even on a flat grey photo that gives the saliency model nothing to see."""
    path = tmp_path / "flat.jpg"
    cv2.imwrite(str(path), np.full((480, 640, 3), 128, np.uint8))
    rng = np.random.default_rng(0)
    fixations = np.clip(rng.normal((560.0, 240.0), 12.0, size=(200, 2)), 0, 479).astype(np.float32)
    record = FixationRecord("osie", "flat.jpg", path, 640, 480, fixations, 1)
    ceiling = croppers(CropOptions())["density-engine"]
    (box,) = ceiling(record, ["9:16"])
    integral = fixation_integral(record)
    assert box_count(integral, box) >= 0.95 * len(fixations)
    (centre,) = centre_cropper(record, ["9:16"])
    assert box_count(integral, centre) < 0.05 * len(fixations)


def test_saliency_alone_boxes_cover_the_peak() -> None:
    from training.ceiling import saliency_only_boxes

    sal = np.zeros((48, 64), np.float32)
    sal[20:26, 55:60] = 1.0  # a blob near the right edge of a 640 x 480 photo
    for box in saliency_only_boxes(sal, 640, 480):
        assert box.x <= 550 and box.right >= 600 and box.y <= 200 and box.bottom >= 260


@needs_data
def test_inter_observer_ceiling_runs_on_real_photos() -> None:
    from training.ceiling import run
    from training.datasets import observer_fixations

    per = observer_fixations(DATA, "osie")
    assert len(per) == 700 and all(len(v) == 15 for v in list(per.values())[:20])
    table = run(DATA, limit=1)
    assert set(table) == {
        "engine, saliency model",
        "engine, other observers' density",
        "saliency alone, saliency model",
        "saliency alone, other observers' density",
    }
    assert all(0.0 < v["of_oracle"] <= 1.0 for v in table.values())


def test_labelled_faces_are_shrunk_to_face_boxes_at_the_image_size() -> None:
    from training.crop_eval import LabelledFaces
    from training.datasets import FaceLabel

    head = FaceLabel(100, 50, 157.9, 155, frontal=True, profile=False, back=False, occluded=False)
    detector = LabelledFaces([head], 640, 480)
    full = detector.detect(np.zeros((480, 640, 3), np.uint8), 0.6)
    np.testing.assert_allclose(full[0, :4], [129, 93, 100, 100], atol=0.5)  # inside the head
    half = detector.detect(np.zeros((240, 320, 3), np.uint8), 0.6)
    np.testing.assert_allclose(half[0, :4], full[0, :4] / 2, atol=1e-4)


def test_yunet_on_labels_keeps_only_the_detections_on_a_label() -> None:
    """The ceiling's detector runs the real YuNet and keeps a detection only where it sits
    on one of the given labels; `countable_labels` keeps the frontal, unoccluded ones."""
    import skimage.data

    from autocrop.faces import load_face_detector
    from training.crop_eval import YuNetOnLabels, countable_labels
    from training.datasets import FaceLabel

    bgr = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)  # 512 x 512, one face
    found = load_face_detector().detect(bgr, 0.6)
    assert len(found) == 1
    x, y, w, h = (float(v) for v in found[0, :4])
    on = FaceLabel(x - 0.3 * w, y - 0.4 * h, 1.6 * w, 1.6 * h, frontal=True, profile=False, back=False, occluded=False)
    away = FaceLabel(400, 400, 60, 60, frontal=False, profile=True, back=False, occluded=False)
    kept = YuNetOnLabels([on, away], 512, 512).detect(bgr, 0.6)
    np.testing.assert_allclose(kept, found)
    assert len(YuNetOnLabels([away], 512, 512).detect(bgr, 0.6)) == 0
    # At half the size the labels scale with the image.
    small = cv2.resize(bgr, (256, 256), interpolation=cv2.INTER_AREA)
    assert len(YuNetOnLabels([on], 512, 512).detect(small, 0.6)) == len(load_face_detector().detect(small, 0.6))
    assert countable_labels({"a.jpg": [on, away]}) == {"a.jpg": [on]}
