"""Face recall: the matching rules on hand-made boxes, and the per-bucket run on real photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.shared_data import DATA, needs_data
from training.datasets import FaceLabel
from training.face_eval import BUCKETS, found_labels, kind_of, main, match_mask

HEAD = np.array([[100.0, 100.0, 160.0, 170.0]])  # a labelled head, 60 x 70


def test_a_face_box_inside_a_head_is_found_by_the_face_in_head_rule_only() -> None:
    face = np.array([[112.0, 120.0, 150.0, 165.0]])  # brow to chin: IoU with the head ~0.4
    tight = np.array([[118.0, 128.0, 148.0, 164.0]])  # small (tilted) face: IoU ~0.26
    assert found_labels(HEAD, face, "iou")[0] and found_labels(HEAD, face)[0]
    assert not found_labels(HEAD, tight, "iou")[0]
    assert found_labels(HEAD, tight)[0]


def test_fragments_and_neighbours_are_not_faces() -> None:
    fragment = np.array([[130.0, 150.0, 145.0, 165.0]])  # 15 px: a hand, an ear
    beside = np.array([[150.0, 100.0, 200.0, 160.0]])  # mostly outside the head
    assert not found_labels(HEAD, fragment)[0]
    assert not found_labels(HEAD, beside)[0]
    assert not match_mask(HEAD, np.vstack([fragment, beside])).any()


def test_one_detection_finds_one_label() -> None:
    heads = np.array([[100.0, 100.0, 160.0, 170.0], [104.0, 102.0, 164.0, 172.0]])  # two labels, one face
    face = np.array([[112.0, 120.0, 150.0, 165.0]])
    assert found_labels(heads, face).sum() == 1


def test_kinds() -> None:
    def label(**kw: bool) -> FaceLabel:
        base = dict(frontal=False, profile=False, back=False, occluded=False)
        return FaceLabel(0, 0, 10, 10, **{**base, **kw})

    assert kind_of(label(frontal=True)) == "frontal"
    assert kind_of(label(frontal=True, occluded=True)) == "frontal occluded"
    assert kind_of(label(profile=True)) == "profile"
    assert kind_of(label(back=True, frontal=True)) == "back"


@needs_data
def test_recall_table_on_real_photos(tmp_path: Path) -> None:
    out = tmp_path / "faces.json"
    assert main(["--data", str(DATA), "--limit", "4", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = [r for r in result["table"] if r["rule"] == "face-in-head"]
    assert len(rows) == 4 * len(BUCKETS)
    assert sum(r["labels"] for r in rows) > 20
    assert 0.5 < result["recall_frontal_24px"]["face-in-head"] <= 1.0
    assert result["recall_frontal_24px"]["face-in-head"] >= result["recall_frontal_24px"]["iou"]


@needs_data
def test_blazeface_finds_a_face_yunet_finds_and_merges_with_it(tmp_path: Path) -> None:
    """The second-detector comparison (docs/faces.md): BlazeFace full range through LiteRT, decoded
    from its 48x48 anchors, finds the face YuNet finds, and the merged run finds no fewer."""
    import cv2

    from autocrop import CropOptions
    from autocrop.faces import detect_faces, load_face_detector
    from research.blazeface import DEFAULT_MODEL, BlazeFaceDetector, anchors
    from research.blazeface import main as blazeface_main

    assert anchors().shape == (48 * 48, 2)
    from matplotlib import cbook

    bgr = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    blaze = BlazeFaceDetector(DATA / "weights" / DEFAULT_MODEL).detect(bgr, 0.6)
    yunet = detect_faces(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), load_face_detector(), CropOptions())
    assert len(blaze) >= 1 and len(yunet) >= 1
    b, y = blaze[0], yunet[0]
    centre = (b[0] + b[2] / 2, b[1] + b[3] / 2)
    assert y[0] < centre[0] < y[0] + y[2] and y[1] < centre[1] < y[1] + y[3]
    results = {}
    for detector, flags in (("blazeface", []), ("yunet+blazeface", ["--with-yunet"])):
        out = tmp_path / f"{detector}.json"
        assert blazeface_main(["--data", str(DATA), "--limit", "3", *flags, "--json", str(out)]) == 0
        results[detector] = json.loads(out.read_text())
    assert results["blazeface"]["detector"] == "blazeface-full-range"
    assert results["yunet+blazeface"]["detector"].endswith("+blazeface-full-range")
    found = {d: sum(r["found"] for r in res["table"] if r["rule"] == "face-in-head") for d, res in results.items()}
    assert found["yunet+blazeface"] >= found["blazeface"]
