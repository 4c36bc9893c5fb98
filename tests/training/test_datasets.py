"""Loaders on the real OSIE/EyeCrowd files, and on tiny .mat files written in each layout."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import scipy.io

from tests.shared_data import DATA, OSIE, needs_data
from training.datasets import (
    EYECROWD_SCALE,
    FixationRecord,
    LoadReport,
    load_eyecrowd,
    load_eyecrowd_faces,
    load_osie,
    load_salicon,
    load_saliency_sets,
    validation_split,
)

EYECROWD = DATA / "saliency/eyecrowd"


def struct_array(rows: list[dict[str, Any]]) -> np.ndarray:
    """A MATLAB struct array for scipy.io.savemat (a 1-row array squeezes to a scalar struct)."""
    keys = list(rows[0])
    arr = np.empty((1, len(rows)), dtype=[(k, object) for k in keys])
    for i, row in enumerate(rows):
        for k in keys:
            arr[0, i][k] = row[k]
    return arr


def write_image(path: Path, width: int, height: int) -> None:
    """A small grey JPEG of the given size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((height, width, 3), 128, np.uint8))


def inside(record: FixationRecord) -> bool:
    """Every fixation rounds to a pixel of the stored image."""
    x, y = record.fixations[:, 0], record.fixations[:, 1]
    return bool(
        ((x >= -0.5) & (x < record.width - 0.5) & (y >= -0.5) & (y < record.height - 0.5)).all()
    )


@pytest.fixture(scope="module")
def osie() -> tuple[list[FixationRecord], LoadReport]:
    report = LoadReport()
    return load_osie(OSIE, report=report), report


@pytest.fixture(scope="module")
def eyecrowd() -> tuple[list[FixationRecord], LoadReport]:
    report = LoadReport()
    return load_eyecrowd(EYECROWD, report=report), report


@needs_data
def test_osie_counts(osie: tuple[list[FixationRecord], LoadReport]) -> None:
    records, report = osie
    assert len(records) == 700
    assert {r.observers for r in records} == {15}
    assert {(r.width, r.height) for r in records} == {(800, 600)}
    assert report.fixations_total == 98_321  # SOURCE.md, before dropping
    print(f"\nOSIE: {report.fixations_dropped} of {report.fixations_total} fixations dropped")
    assert report.fixations_dropped == 0
    assert sum(len(r.fixations) for r in records) == 98_321
    assert all(inside(r) for r in records)
    assert [r.name for r in records] == sorted(r.name for r in records)
    assert all(r.fixations.dtype == np.float32 and r.fixations.shape[1] == 2 for r in records)
    assert not records[0].fixations.flags.writeable


@needs_data
def test_osie_first_fixation_is_matlab_minus_one(
    osie: tuple[list[FixationRecord], LoadReport],
) -> None:
    records, _ = osie
    mat = scipy.io.loadmat(OSIE / "fixations.mat", squeeze_me=True, struct_as_record=False)
    entry = mat["fixations"][0]
    first = entry.subjects[0]
    record = records[0]
    assert record.name == entry.img == "1001.jpg"
    np.testing.assert_allclose(
        record.fixations[0], [first.fix_x[0] - 1, first.fix_y[0] - 1], atol=1e-4
    )
    assert record.load_rgb().shape == (600, 800, 3)


@needs_data
def test_eyecrowd_present_images_only(eyecrowd: tuple[list[FixationRecord], LoadReport]) -> None:
    records, report = eyecrowd
    assert len(records) == 400
    assert report.images_missing == 100
    assert {r.observers for r in records} == {16}
    assert {(r.width, r.height) for r in records} == {(640, 480)}
    print(f"\nEyeCrowd: {report.fixations_dropped} of {report.fixations_total} fixations dropped")
    assert report.fixations_dropped == 0
    assert all(inside(r) for r in records)
    assert all(r.image_path.exists() for r in records)


@needs_data
def test_eyecrowd_coordinates_are_scaled(eyecrowd: tuple[list[FixationRecord], LoadReport]) -> None:
    records, _ = eyecrowd
    mat = scipy.io.loadmat(EYECROWD / "fixations.mat", squeeze_me=True, struct_as_record=False)
    entry = next(e for e in mat["fixations"] if e.img == records[0].name)
    first = entry.subjects[0]
    expected = [(first.fix_x[0] - 1) * EYECROWD_SCALE, (first.fix_y[0] - 1) * EYECROWD_SCALE]
    np.testing.assert_allclose(records[0].fixations[0], expected, atol=1e-4)


@needs_data
def test_eyecrowd_faces() -> None:
    everything = load_eyecrowd_faces(EYECROWD, present_only=False)
    assert len(everything) == 500
    assert sum(len(v) for v in everything.values()) == 9_778  # EVALUATION.md / SOURCE.md
    faces = load_eyecrowd_faces(EYECROWD)
    assert len(faces) == 400
    assert sum(len(v) for v in faces.values()) == 7_606
    assert all(len(v) >= 1 for v in faces.values())  # SOURCE.md: every image has a face
    # First face of 001.jpg: left 85.51, top 386.59, 28.38 x 38.40 in 1024x768, frontal, occluded.
    face = faces["001.jpg"][0]
    assert face.x == pytest.approx(84.5087 * 0.625, abs=1e-3)
    assert face.y == pytest.approx(385.5870 * 0.625, abs=1e-3)
    assert face.w == pytest.approx(28.3826 * 0.625, abs=1e-3)
    assert face.h == pytest.approx(38.4000 * 0.625, abs=1e-3)
    assert (face.frontal, face.profile, face.back, face.occluded) == (True, False, False, True)
    assert 0 <= face.x and face.x + face.w <= 640 and 0 <= face.y and face.y + face.h <= 480


def test_nus_loader_squeezed_edge_cases(tmp_path: Path) -> None:
    """Subjects with 0 or 1 fixation, an image with one subject, an image not on disk."""
    subjects = struct_array(
        [
            {
                "fix_x": np.array([1.0, 800.0, 801.0]),
                "fix_y": np.array([1.0, 600.0, 10.0]),
                "fix_duration": np.array([1, 2, 3]),
            },
            {"fix_x": np.array([5.0]), "fix_y": np.array([6.0]), "fix_duration": np.array([1])},
            {
                "fix_x": np.zeros((0, 0)),
                "fix_y": np.zeros((0, 0)),
                "fix_duration": np.zeros((0, 0)),
            },
        ]
    )
    lone = struct_array(
        [
            {
                "fix_x": np.array([7.0, 8.0]),
                "fix_y": np.array([9.0, 10.0]),
                "fix_duration": np.array([1, 1]),
            }
        ]
    )
    scipy.io.savemat(
        tmp_path / "fixations.mat",
        {
            "fixations": struct_array(
                [
                    {"img": "2.jpg", "subjects": subjects},
                    {"img": "1.jpg", "subjects": lone},
                    {"img": "missing.jpg", "subjects": lone},
                ]
            )
        },
    )
    write_image(tmp_path / "stimuli/1.jpg", 800, 600)
    write_image(tmp_path / "stimuli/2.jpg", 800, 600)
    report = LoadReport()
    records = load_osie(tmp_path, report=report)
    assert [r.name for r in records] == ["1.jpg", "2.jpg"]
    assert report.images_missing == 1
    assert records[0].observers == 1
    np.testing.assert_array_equal(records[0].fixations, [[6, 8], [7, 9]])
    assert records[1].observers == 3
    # (801, 10) is x = 800 after -1: past the last column (799.5), dropped.
    np.testing.assert_array_equal(records[1].fixations, [[0, 0], [799, 599], [4, 5]])
    assert (report.fixations_total, report.fixations_dropped) == (6, 1)


def test_faces_single_and_no_face(tmp_path: Path) -> None:
    """squeeze_me turns a 1-face image's `faces` into a scalar struct."""
    face = {
        "left": 101.0,
        "top": 51.0,
        "width": 16.0,
        "height": 32.0,
        "center": np.array([109, 67], np.uint16),
        "isFrontalFace": 0,
        "isProfileFace": 1,
        "isBackFace": 0,
        "isOccluded": 0,
    }
    labels = struct_array(
        [
            {"img": "a.jpg", "nFaces": 1, "faces": struct_array([face])},
            {"img": "b.jpg", "nFaces": 0, "faces": np.zeros((0, 0))},
        ]
    )
    scipy.io.savemat(tmp_path / "face_labels.mat", {"labels": labels})
    write_image(tmp_path / "stimuli_640x480/a.jpg", 640, 480)
    faces = load_eyecrowd_faces(tmp_path)
    assert list(faces) == ["a.jpg"]
    (only,) = faces["a.jpg"]
    assert (only.x, only.y, only.w, only.h) == (62.5, 31.25, 10.0, 20.0)
    assert (only.frontal, only.profile, only.back, only.occluded) == (False, True, False, False)
    assert load_eyecrowd_faces(tmp_path, present_only=False)["b.jpg"] == []


def salicon_mat(path: Path, resolution: tuple[int, int], gaze: list[dict[str, np.ndarray]]) -> None:
    """One SALICON 2017 fixation file: image, resolution [h, w], gaze per observer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(
        path,
        {
            "image": path.stem,
            "resolution": np.array(resolution, np.uint16),
            "gaze": struct_array(gaze),
        },
    )


def observer(
    fixations: list[list[float]], location: list[list[float]] | None = None
) -> dict[str, np.ndarray]:
    """One observer's gaze struct: raw samples, timestamps and fixations, (x, y) 1-based."""
    loc = np.array(location if location is not None else fixations, np.float64).reshape(-1, 2)
    return {
        "location": loc,
        "timestamp": np.arange(len(loc), dtype=np.float64) * 8,
        "fixations": np.array(fixations, np.float64).reshape(-1, 2),
    }


def test_salicon_layout(tmp_path: Path) -> None:
    """SALICON 2017 layout: (x, y) 1-based, one observer, empty fixations, resized copy."""
    root = tmp_path / "saliency/salicon"
    a = "COCO_train2014_000000000009"
    b = "COCO_train2014_000000000025"
    c = "COCO_train2014_000000000030"  # .mat without its image: skipped
    salicon_mat(
        root / f"fixations/train/{a}.mat",
        (48, 64),
        [
            observer([[1, 1], [64, 48], [10, 20]], location=[[1, 1], [70, 5], [-3, 2]]),
            observer([[33, 17]]),
            observer([]),
        ],
    )
    salicon_mat(root / f"fixations/train/{b}.mat", (480, 640), [observer([[641, 1], [321, 241]])])
    salicon_mat(root / f"fixations/train/{c}.mat", (48, 64), [observer([[2, 2]])])
    write_image(root / f"images/train/{a}.jpg", 64, 48)
    write_image(root / f"images/train/{b}.jpg", 320, 240)  # a half-size copy
    val = "COCO_val2014_000000000042"
    salicon_mat(root / f"fixations/val/{val}.mat", (48, 64), [observer([[5, 6]])])
    write_image(root / f"images/val/{val}.jpg", 64, 48)

    report = LoadReport()
    train = load_salicon(root, "train", report=report)
    assert [r.name for r in train] == [f"{a}.jpg", f"{b}.jpg"]
    assert report.images_missing == 1
    first, second = train
    assert (first.dataset, first.width, first.height, first.observers) == ("salicon", 64, 48, 3)
    np.testing.assert_array_equal(first.fixations, [[0, 0], [63, 47], [9, 19], [32, 16]])
    # Resized copy: (x - 1) * 0.5; x = 641 -> 320 is past the 320-px image, dropped.
    assert (second.width, second.height) == (320, 240)
    np.testing.assert_array_equal(second.fixations, [[160, 120]])
    assert (report.fixations_total, report.fixations_dropped) == (6, 1)

    mouse = load_salicon(root, "train", kind="location")
    np.testing.assert_array_equal(mouse[0].fixations, [[0, 0], [32, 16]])  # (70,5), (-3,2) dropped
    (v,) = load_salicon(root, "val")
    assert v.name == f"{val}.jpg"
    np.testing.assert_array_equal(v.fixations, [[4, 5]])

    salicon_train, salicon_val = load_saliency_sets(tmp_path, sets=("salicon",))["salicon"]
    assert (len(salicon_train), len(salicon_val)) == (2, 1)
    with pytest.raises(ValueError):
        load_salicon(root, "test")


def test_validation_split_is_every_tenth_by_name() -> None:
    records = [
        FixationRecord(
            "osie", f"{i:04d}.jpg", Path(f"{i:04d}.jpg"), 8, 6, np.zeros((0, 2), np.float32), 1
        )
        for i in range(25)
    ]
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    train, val = validation_split(shuffled)
    assert [r.name for r in val] == ["0000.jpg", "0010.jpg", "0020.jpg"]
    assert len(train) == 22
    assert not {r.name for r in train} & {r.name for r in val}


@needs_data
def test_load_saliency_sets_sizes() -> None:
    sets = load_saliency_sets(DATA)
    assert {k: (len(t), len(v)) for k, (t, v) in sets.items()} == {
        "osie": (630, 70),
        "eyecrowd": (360, 40),
    }
    osie_train, osie_val = sets["osie"]
    assert osie_val[0].name == "1001.jpg" and osie_val[1].name == "1011.jpg"
    assert not {r.name for r in osie_train} & {r.name for r in osie_val}
    with pytest.raises(ValueError):
        load_saliency_sets(DATA, sets=("mit300",))


@needs_data
def test_mit1003_sample_loads_every_observer_and_trains_nothing() -> None:
    """The out-of-domain set: 100 photos, 15 observers, fixations in stored pixels, no training part."""
    from training.datasets import observer_fixations

    train, val = load_saliency_sets(DATA, sets=("mit1003",))["mit1003"]
    assert train == [] and len(val) == 100
    records = {r.name: r for r in val}
    first = records["i05june05_static_street_boston_p1010764.jpg"]
    assert (first.width, first.height, first.observers) == (1024, 768, 15)
    # SOURCE.md: 10,988 rows, 293 outside the frame.
    assert sum(len(r.fixations) for r in val) == 10988 - 293
    # Its first row (CNG, 499.42, 399.57) is a fixation of that photo, as stored (0-based).
    assert np.isclose(first.fixations, [499.42, 399.57], atol=1e-3).all(axis=1).any()
    per = observer_fixations(DATA, "mit1003")
    assert len(per) == 100 and all(len(v) == 15 for v in per.values())
    assert sum(len(p) for p in per[first.name]) >= len(first.fixations)
    sizes = {(r.width, r.height) for r in val}
    assert (768, 1024) in sizes and max(max(s) for s in sizes) == 1024


@needs_data
def test_training_refuses_the_out_of_domain_set(tmp_path) -> None:
    from training.saliency import TrainConfig, train
    from training.saliency_frozen import FrozenConfig
    from training.saliency_frozen import train as train_frozen

    with pytest.raises(ValueError, match="out-of-domain"):
        train(TrainConfig(sets=("osie", "mit1003"), epochs=1, max_images=2), DATA, tmp_path)
    with pytest.raises(ValueError, match="out-of-domain"):
        train_frozen(FrozenConfig(sets=("mit1003",)), tmp_path, tmp_path)
