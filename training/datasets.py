"""Eye-tracking data sets (OSIE, EyeCrowd, SALICON) as typed records in stored-image pixels.

Every loader returns fixations as 0-based (x, y) float32 pixel coordinates in the image file
as it is stored here, so nothing downstream needs to know a data set's conventions:
MATLAB's 1-based coordinates lose 1, and EyeCrowd's 1024x768 annotations are scaled by 0.625
to the 640x480 copies in ../shared. A fixation is inside the image when it rounds to a pixel
of it (-0.5 <= x < width - 0.5), the same rounding `training.fixations.fixation_map` uses;
fixations outside are dropped and counted in `LoadReport`.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import scipy.io
from PIL import Image

log = logging.getLogger(__name__)

#: Root of the shared data, relative to the repository root (every CLI's --data default).
DEFAULT_DATA_ROOT = Path("../shared/data")
#: EyeCrowd was recorded on 1024x768 stimuli; the copies in ../shared are 640x480.
EYECROWD_SCALE = 640 / 1024
#: Every `VALIDATION_EVERY`-th image (by sorted name) is held out for validation.
VALIDATION_EVERY = 10
#: Data sets `load_saliency_sets` knows, with their folder under `<data_root>/saliency`.
SET_DIRS = {"osie": "osie", "eyecrowd": "eyecrowd", "salicon": "salicon", "mit1003": "mit1003_100"}
#: Out-of-domain sets: evaluated, never trained or tuned on (EVALUATION.md). Their loaders
#: return every photo as validation and none as training, so no training path can see them.
REPORT_ONLY_SETS = ("mit1003",)


# eq=False: a generated __eq__ would compare the fixation arrays element-wise (and raise);
# records compare and hash by identity instead.
@dataclass(frozen=True, eq=False)
class FixationRecord:
    """One image with all observers' fixations, (x, y) 0-based in stored-image pixels."""

    dataset: str
    name: str
    image_path: Path
    width: int
    height: int
    fixations: np.ndarray = field(repr=False)
    observers: int

    def load_rgb(self) -> np.ndarray:
        """The stored image as uint8 RGB, HxWx3."""
        bgr = cv2.imread(str(self.image_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read image {self.image_path}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class FaceLabel:
    """A labelled EyeCrowd face box, (x, y) top-left 0-based, in 640x480 stored-image pixels."""

    x: float
    y: float
    w: float
    h: float
    frontal: bool
    profile: bool
    back: bool
    occluded: bool


@dataclass
class LoadReport:
    """What a loader kept and dropped; pass one in to a loader to have it filled in."""

    images: int = 0
    fixations_total: int = 0
    fixations_dropped: int = 0
    images_missing: int = 0


def _as_list(value: Any) -> list[Any]:
    """A MATLAB struct array as a list: squeeze_me turns a 1-element array into a scalar."""
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _points(xs: Any, ys: Any) -> np.ndarray:
    """Two MATLAB coordinate vectors (maybe scalars or empty after squeeze) as (N, 2) float64."""
    x = np.atleast_1d(np.asarray(xs, dtype=np.float64)).ravel()
    y = np.atleast_1d(np.asarray(ys, dtype=np.float64)).ravel()
    if x.size != y.size:
        raise ValueError(f"fix_x has {x.size} values but fix_y has {y.size}")
    return np.stack([x, y], axis=1)


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, from its header only (no decode)."""
    with Image.open(path) as im:
        return int(im.size[0]), int(im.size[1])


def inside_image(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Mask of points that round to a pixel of a width x height image."""
    x, y = points[:, 0], points[:, 1]
    ok = np.isfinite(x) & np.isfinite(y)
    return ok & (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)


def _record(
    dataset: str,
    image_path: Path,
    points_1based: Sequence[np.ndarray],
    scale: float,
    report: LoadReport,
) -> FixationRecord:
    """Build a record from per-observer 1-based points: minus 1, scale, drop the outside ones."""
    width, height = _image_size(image_path)
    pts = np.concatenate([p.reshape(-1, 2) for p in points_1based] or [np.zeros((0, 2))])
    pts = (pts - 1.0) * scale
    keep = inside_image(pts, width, height)
    report.images += 1
    report.fixations_total += int(pts.shape[0])
    report.fixations_dropped += int((~keep).sum())
    fixations = np.ascontiguousarray(pts[keep], dtype=np.float32)
    # Read-only so the frozen record really is a value: augmentations must work on a copy.
    fixations.flags.writeable = False
    return FixationRecord(
        dataset=dataset,
        name=image_path.name,
        image_path=image_path,
        width=width,
        height=height,
        fixations=fixations,
        observers=len(points_1based),
    )


def _load_nus_fixations(
    dataset: str, mat_path: Path, image_dir: Path, scale: float, report: LoadReport | None
) -> list[FixationRecord]:
    """Read the NUS-VIP `fixations` struct (img, subjects[].fix_x/fix_y) shared by OSIE/EyeCrowd."""
    mat = scipy.io.loadmat(mat_path, squeeze_me=True, struct_as_record=False)
    report = report if report is not None else LoadReport()
    records = []
    for entry in _as_list(mat["fixations"]):
        image_path = image_dir / str(entry.img)
        if not image_path.exists():
            report.images_missing += 1
            continue
        points = [_points(s.fix_x, s.fix_y) for s in _as_list(entry.subjects)]
        records.append(_record(dataset, image_path, points, scale, report))
    _log_report(dataset, report)
    return sorted(records, key=lambda r: r.name)


def observer_fixations(data_root: Path, dataset: str) -> dict[str, list[np.ndarray]]:
    """Image name -> each observer's (N, 2) fixations, 0-based stored-image pixels (OSIE, EyeCrowd).

    The inter-observer ceiling (`training.ceiling`) needs them apart: some observers'
    fixations predict the others' as well as anything can.
    """
    root = Path(data_root) / "saliency" / SET_DIRS[dataset]
    if dataset == "mit1003":
        return _mit1003_observers(root)
    scale = EYECROWD_SCALE if dataset == "eyecrowd" else 1.0
    mat = scipy.io.loadmat(root / "fixations.mat", squeeze_me=True, struct_as_record=False)
    return {
        str(e.img): [(_points(s.fix_x, s.fix_y).reshape(-1, 2) - 1.0) * scale for s in _as_list(e.subjects)]
        for e in _as_list(mat["fixations"])
    }


def _mit1003_observers(root: Path) -> dict[str, list[np.ndarray]]:
    """MIT1003 sample: image name -> each observer's (N, 2) fixations as stored (0-based pixels).

    SOURCE.md: the coordinates are the published ones and it is not known whether they are
    0- or 1-based; they are taken as 0-based (a 1 px question, far below the 0.03 x 1024 px
    blur). Observers are kept in the order the table first lists them, so splits are
    reproducible.
    """
    rows: dict[str, dict[str, list[tuple[float, float]]]] = {}
    with open(root / "fixations.csv", newline="") as f:
        for row in csv.DictReader(f):
            per = rows.setdefault(row["image"], {})
            per.setdefault(row["observer"], []).append((float(row["x"]), float(row["y"])))
    return {
        image: [np.asarray(pts, dtype=np.float64).reshape(-1, 2) for pts in per.values()]
        for image, per in rows.items()
    }


def load_mit1003(root: Path, report: LoadReport | None = None) -> list[FixationRecord]:
    """MIT1003 sample (out-of-domain, report only): 100 photos, 15 observers, from fixations.csv."""
    root = Path(root)
    report = report if report is not None else LoadReport()
    records = []
    for image, per in sorted(_mit1003_observers(root).items()):
        image_path = root / "stimuli" / image
        if not image_path.exists():
            report.images_missing += 1
            continue
        # Coordinates are 0-based already: _record subtracts 1 from 1-based points, so add it.
        records.append(_record("mit1003", image_path, [p + 1.0 for p in per], 1.0, report))
    _log_report("mit1003", report)
    return records


def _log_report(dataset: str, report: LoadReport) -> None:
    """Log what a loader kept and dropped."""
    log.info(
        "%s: %d images (%d listed without an image file), %d fixations, %d dropped outside",
        dataset,
        report.images,
        report.images_missing,
        report.fixations_total,
        report.fixations_dropped,
    )


def load_osie(root: Path, report: LoadReport | None = None) -> list[FixationRecord]:
    """OSIE: 700 images (800x600), 15 observers each, from `root`/fixations.mat + stimuli/."""
    root = Path(root)
    return _load_nus_fixations("osie", root / "fixations.mat", root / "stimuli", 1.0, report)


def load_eyecrowd(root: Path, report: LoadReport | None = None) -> list[FixationRecord]:
    """EyeCrowd: the 400 images present in stimuli_640x480/ (the .mat lists 500), 16 observers."""
    root = Path(root)
    return _load_nus_fixations(
        "eyecrowd", root / "fixations.mat", root / "stimuli_640x480", EYECROWD_SCALE, report
    )


def load_eyecrowd_faces(root: Path, present_only: bool = True) -> dict[str, list[FaceLabel]]:
    """EyeCrowd's labelled faces by image name, boxes in 640x480 stored-image pixels.

    Boxes are kept as labelled, not clipped: some run past the image edge (a face cut by the
    frame). With `present_only` (default) only the images in stimuli_640x480/ are returned.
    """
    root = Path(root)
    mat = scipy.io.loadmat(root / "face_labels.mat", squeeze_me=True, struct_as_record=False)
    image_dir = root / "stimuli_640x480"
    faces: dict[str, list[FaceLabel]] = {}
    for entry in _as_list(mat["labels"]):
        name = str(entry.img)
        if present_only and not (image_dir / name).exists():
            continue
        # nFaces == 0 would leave `faces` empty; squeeze_me turns one face into a scalar struct.
        labels = [] if int(entry.nFaces) == 0 else _as_list(entry.faces)
        faces[name] = [
            FaceLabel(
                x=(float(f.left) - 1.0) * EYECROWD_SCALE,
                y=(float(f.top) - 1.0) * EYECROWD_SCALE,
                w=float(f.width) * EYECROWD_SCALE,
                h=float(f.height) * EYECROWD_SCALE,
                frontal=bool(f.isFrontalFace),
                profile=bool(f.isProfileFace),
                back=bool(f.isBackFace),
                occluded=bool(f.isOccluded),
            )
            for f in labels
        ]
    return dict(sorted(faces.items()))


def load_salicon(
    root: Path,
    split: str = "train",
    kind: str = "fixations",
    report: LoadReport | None = None,
) -> list[FixationRecord]:
    """SALICON (2017 release, LSUN'17) in its distributed layout under `root`.

    Layout: images/{split}/COCO_{split}2014_%012d.jpg and fixations/{split}/<same stem>.mat.
    Each .mat holds `image` (the stem), `resolution` ([height, width], 480x640) and `gaze`, a
    struct array with one element per observer: `location` (K x 2 raw mouse samples),
    `timestamp` (K) and `fixations` (M x 2 fixations inferred from the samples). Both point
    arrays are (x, y), i.e. (column, row), 1-based MATLAB pixels: this is how pysaliency's
    SALICON loader reads them (`[:, 0] - 1` as x, `[:, 1] - 1` as y) and matches the
    2015 salicon-api, which writes `sal_map[y][x]` for each (x, y). `kind` picks `fixations`
    (default: what our metrics compare against) or `location` (the raw mouse samples, which
    do leave the image; those are dropped like any outside point). If the stored image is
    not the `resolution` size (a resized copy), points are scaled to the stored size.
    """
    if split not in ("train", "val"):
        raise ValueError(
            f"SALICON split must be 'train' or 'val' (test has no fixations), got {split!r}"
        )
    if kind not in ("fixations", "location"):
        raise ValueError(f"kind must be 'fixations' or 'location', got {kind!r}")
    root = Path(root)
    image_dir = root / "images" / split
    report = report if report is not None else LoadReport()
    records = []
    for mat_path in sorted((root / "fixations" / split).glob(f"COCO_{split}2014_*.mat")):
        image_path = image_dir / f"{mat_path.stem}.jpg"
        if not image_path.exists():
            report.images_missing += 1
            continue
        mat = scipy.io.loadmat(mat_path, squeeze_me=True, struct_as_record=False)
        _, res_w = (int(v) for v in np.asarray(mat["resolution"]).ravel()[:2])
        width, _ = _image_size(image_path)
        points = [
            np.asarray(getattr(g, kind), dtype=np.float64).reshape(-1, 2)
            for g in _as_list(mat["gaze"])
        ]
        # One scale for both axes: a resized copy keeps SALICON's 4:3 aspect.
        records.append(_record("salicon", image_path, points, width / res_w, report))
    _log_report("salicon", report)
    return records


def validation_split(
    records: Iterable[FixationRecord],
) -> tuple[list[FixationRecord], list[FixationRecord]]:
    """(train, val): sorted by name, every 10th image (index % 10 == 0) is validation."""
    ordered = sorted(records, key=lambda r: r.name)
    train = [r for i, r in enumerate(ordered) if i % VALIDATION_EVERY != 0]
    val = [r for i, r in enumerate(ordered) if i % VALIDATION_EVERY == 0]
    return train, val


def load_saliency_sets(
    data_root: Path = DEFAULT_DATA_ROOT, sets: Sequence[str] = ("osie", "eyecrowd")
) -> dict[str, tuple[list[FixationRecord], list[FixationRecord]]]:
    """(train, val) records per data set; SALICON keeps its own train/val split.

    A report-only set (MIT1003) comes back as ([], every photo): nothing can train on it.
    """
    saliency_root = Path(data_root) / "saliency"
    out: dict[str, tuple[list[FixationRecord], list[FixationRecord]]] = {}
    for name in sets:
        if name not in SET_DIRS:
            raise ValueError(f"unknown saliency set {name!r}; known: {sorted(SET_DIRS)}")
        root = saliency_root / SET_DIRS[name]
        if name == "osie":
            out[name] = validation_split(load_osie(root))
        elif name == "eyecrowd":
            out[name] = validation_split(load_eyecrowd(root))
        elif name == "mit1003":
            out[name] = ([], load_mit1003(root))
        else:
            out[name] = (load_salicon(root, "train"), load_salicon(root, "val"))
    return out
