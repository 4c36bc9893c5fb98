"""Crop-preference data sets (FCDB, GAICD) as typed records in stored-image pixels.

The annotations live in ../shared/data/crops; the photos do not (they are Flickr/GAIC
downloads a user may have). Every loader reads the annotations alone and, given an
`image_dir`, attaches the photos found there.

Boxes are (x, y, w, h) float64 in stored-image pixels throughout.

- FCDB (github.com/yiling-chen/flickr-cropping-dataset): one expert crop per image
  (`cropping_{training,testing}_set.json`), ten voted crop pairs per image
  (`ranking_annotation.json`, 5 votes a pair) and the sliding windows of the paper's
  evaluation (`sliding_window.json`, the annotated crop first). Photos are named by the
  basename of their Flickr URL, as the data set's download script saves them.
- GAICD (github.com/HuiZeng/Grid-Anchor-based-Image-Cropping, `imdb_GAIC1000.mat`): 1,236
  images, 54-90 grid-anchor crops each with a mean opinion score (MOS, 1-5), split
  1000 train / 36 val / 200 test. Boxes are stored as rows (y1, x1, y2, x2).

`PreferenceSet` is a source's preferences in one form: the boxes of one photo and (better,
worse) index pairs with a weight.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from .datasets import DEFAULT_DATA_ROOT

log = logging.getLogger(__name__)

DEFAULT_CROPS_ROOT = DEFAULT_DATA_ROOT / "crops"
#: The window scales (of each image side) FCDB's sliding-window evaluation used.
FCDB_WINDOW_SCALES = (0.5, 0.6, 0.7, 0.8, 0.9)
#: GAICD's `images.set` codes.
GAICD_SETS = {1: "train", 2: "test", 3: "val"}


def _boxes(rows: Iterable[Sequence[float]]) -> np.ndarray:
    """(N, 4) float64 (x, y, w, h); refuses empty or negative sizes."""
    out = np.asarray(list(rows), dtype=np.float64).reshape(-1, 4)
    if (out[:, 2:] <= 0).any():
        raise ValueError("a crop box has a non-positive width or height")
    return out


def _read_rgb(path: Path | None) -> np.ndarray:
    if path is None:
        raise FileNotFoundError("this record has no image (pass image_dir to the loader)")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _find_image(image_dir: Path | None, name: str, subdirs: Sequence[str] = ()) -> Path | None:
    """`image_dir`/name, else `image_dir`/<subdir>/name for each subdir; None when absent."""
    if image_dir is None:
        return None
    for sub in ("", *subdirs):
        path = Path(image_dir) / sub / name
        if path.is_file():
            return path
    return None


def url_name(url: str) -> str:
    """A Flickr URL's file name, the name FCDB's download script saves the photo under."""
    return url.rstrip("/").rsplit("/", 1)[-1]


# --- the common training form --------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PreferenceSet:
    """Boxes of one photo and which beats which: `pairs[i] = (better, worse)` rows of `boxes`."""

    source: str
    name: str
    image_path: Path | None
    boxes: np.ndarray = field(repr=False)  # (K, 4) x, y, w, h in stored-image px
    pairs: np.ndarray = field(repr=False)  # (M, 2) int indices into boxes
    weights: np.ndarray = field(repr=False)  # (M,) > 0

    def __post_init__(self) -> None:
        if self.pairs.size and (self.pairs.min() < 0 or self.pairs.max() >= len(self.boxes)):
            raise ValueError("pair indices must point into boxes")
        if len(self.pairs) != len(self.weights):
            raise ValueError("one weight per pair")

    def load_rgb(self) -> np.ndarray:
        """The photo as uint8 RGB, HxWx3."""
        return _read_rgb(self.image_path)


def _dedup(better: np.ndarray, worse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique boxes and (better, worse) index pairs into them."""
    boxes, inverse = np.unique(np.concatenate([better, worse]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    n = len(better)
    return boxes, np.stack([inverse[:n], inverse[n:]], axis=1)


# --- FCDB -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CropPair:
    """Two crops of one photo and the votes each got; `preferred` got more."""

    preferred: np.ndarray
    other: np.ndarray
    votes_preferred: int
    votes_other: int

    @property
    def agreement(self) -> float:
        """Share of voters who preferred `preferred` (0.5-1)."""
        return self.votes_preferred / max(1, self.votes_preferred + self.votes_other)


@dataclass(frozen=True, eq=False)
class FcdbRankingImage:
    """One photo of FCDB's ranking annotation: ten voted crop pairs."""

    name: str
    photo_id: int
    url: str
    pairs: tuple[CropPair, ...] = field(repr=False)
    image_path: Path | None = None

    def load_rgb(self) -> np.ndarray:
        return _read_rgb(self.image_path)


def load_fcdb_ranking(
    root: Path = DEFAULT_CROPS_ROOT / "fcdb", image_dir: Path | None = None, present_only: bool = True
) -> list[FcdbRankingImage]:
    """FCDB's `ranking_annotation.json`: 3,362 photos x 10 voted pairs (ties are dropped).

    With `image_dir`, photos found there are attached and, with `present_only`, only those
    are returned.
    """
    entries = json.loads((Path(root) / "ranking_annotation.json").read_text())
    out = []
    for e in entries:
        pairs = []
        for c in e["crops"]:
            v0, v1 = int(c["vote_for_0"]), int(c["vote_for_1"])
            if v0 == v1:
                continue
            a, b = _boxes([c["crop_0"]])[0], _boxes([c["crop_1"]])[0]
            pairs.append(CropPair(a, b, v0, v1) if v0 > v1 else CropPair(b, a, v1, v0))
        name = url_name(e["url"])
        path = _find_image(image_dir, name)
        if image_dir is not None and present_only and path is None:
            continue
        out.append(FcdbRankingImage(name, int(e["flickr_photo_id"]), e["url"], tuple(pairs), path))
    return out


def fcdb_preferences(images: Iterable[FcdbRankingImage], min_agreement: float = 0.8) -> list[PreferenceSet]:
    """FCDB pairs voted for by at least `min_agreement` of the voters, weighted by agreement."""
    sets = []
    for im in images:
        kept = [p for p in im.pairs if p.agreement >= min_agreement]
        if not kept:
            continue
        boxes, pairs = _dedup(np.stack([p.preferred for p in kept]), np.stack([p.other for p in kept]))
        weights = np.array([2 * p.agreement - 1 for p in kept])  # 0 for a split vote, 1 unanimous
        sets.append(PreferenceSet("fcdb", im.name, im.image_path, boxes, pairs, weights))
    return sets


@dataclass(frozen=True, eq=False)
class FcdbCropImage:
    """One photo of FCDB's cropping sets: the expert's crop."""

    name: str
    photo_id: int
    url: str
    crop: np.ndarray
    split: str
    image_path: Path | None = None

    def load_rgb(self) -> np.ndarray:
        return _read_rgb(self.image_path)


def load_fcdb_crops(
    root: Path = DEFAULT_CROPS_ROOT / "fcdb", image_dir: Path | None = None
) -> dict[str, list[FcdbCropImage]]:
    """FCDB's expert crops: {'train': 1,369 photos, 'test': 345}."""
    out: dict[str, list[FcdbCropImage]] = {}
    for split, file in (("train", "cropping_training_set.json"), ("test", "cropping_testing_set.json")):
        entries = json.loads((Path(root) / file).read_text())
        out[split] = [
            FcdbCropImage(
                url_name(e["url"]),
                int(e["flickr_photo_id"]),
                e["url"],
                _boxes([e["crop"]])[0],
                split,
                _find_image(image_dir, url_name(e["url"])),
            )
            for e in entries
        ]
    return out


def infer_side(window_sides: Iterable[int], scales: Sequence[float] = FCDB_WINDOW_SCALES) -> int:
    """The image side that FCDB's window sides were cut from: int(scale x side) for each scale.

    The evaluation script truncated `scale * side` in floating point (so 0.7 x 680 gave 475);
    the same arithmetic is replayed here. Where two sides fit (800 and 801), the smaller one
    is returned: Flickr's standard sizes (800, 1024) are the smaller.
    """
    sides = sorted({int(v) for v in window_sides})
    if not sides:
        raise ValueError("no window sides")
    guess = int(sides[-1] / max(scales))
    for side in range(max(1, guess - 4), guess + 6):
        if sorted({int(s * side) for s in scales}) == sides:
            return side
    raise ValueError(f"window sides {sides} match no image side at scales {scales}")


@dataclass(frozen=True, eq=False)
class FcdbSlidingWindows:
    """One FCDB test photo: the annotated crop, the paper's candidate windows, the photo size."""

    name: str
    gt: np.ndarray
    windows: np.ndarray = field(repr=False)
    width: int
    height: int


def load_fcdb_sliding_windows(root: Path = DEFAULT_CROPS_ROOT / "fcdb") -> list[FcdbSlidingWindows]:
    """FCDB's `sliding_window.json` (345 test photos), with each photo's size recovered.

    The file does not store image sizes; the windows were cut at fixed scales of the sides,
    so the sides are recovered from the window sizes (`infer_side`), never smaller than the
    annotated crop's extent.
    """
    entries = json.loads((Path(root) / "sliding_window.json").read_text())
    out = []
    for e in entries:
        boxes = _boxes(e["crops"])
        gt, windows = boxes[0], boxes[1:]
        width = max(infer_side(windows[:, 2]), math.ceil(gt[0] + gt[2]))
        height = max(infer_side(windows[:, 3]), math.ceil(gt[1] + gt[3]))
        out.append(FcdbSlidingWindows(e["filename"], gt, windows, width, height))
    return out


# --- GAICD ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GaicdImage:
    """One GAICD photo: its scored crops (x, y, w, h) and their mean opinion scores."""

    name: str
    split: str
    boxes: np.ndarray = field(repr=False)
    mos: np.ndarray = field(repr=False)
    image_path: Path | None = None

    def load_rgb(self) -> np.ndarray:
        return _read_rgb(self.image_path)


def load_gaicd(
    root: Path = DEFAULT_CROPS_ROOT / "gaicd", image_dir: Path | None = None, present_only: bool = True
) -> list[GaicdImage]:
    """GAICD (conference version): 1,236 photos with 54-90 scored crops each, in file order.

    Photos are looked up as `image_dir`/name, `image_dir`/<split>/name and
    `image_dir`/images/<split>/name (the data set's own layout).
    """
    mat = scipy.io.loadmat(Path(root) / "imdb_GAIC1000.mat", squeeze_me=True, struct_as_record=False)
    imdb = mat["imdb"]
    out = []
    for path_str, code, raw, mos in zip(
        imdb.meta.img_path, imdb.images.set, imdb.bbox.boxes, imdb.bbox.gt_scores, strict=True
    ):
        name = str(path_str).rsplit("/", 1)[-1]
        split = GAICD_SETS[int(code)]
        # Rows are (y1, x1, y2, x2); [x1, x2) x [y1, y2) in stored-image pixels.
        y1, x1, y2, x2 = (np.asarray(raw, np.float64).reshape(4, -1)[i] for i in range(4))
        boxes = _boxes(np.stack([x1, y1, x2 - x1, y2 - y1], axis=1))
        scores = np.atleast_1d(np.asarray(mos, np.float64))
        if len(scores) != len(boxes):
            raise ValueError(f"{name}: {len(boxes)} boxes but {len(scores)} scores")
        image_path = _find_image(image_dir, name, (split, f"images/{split}"))
        if image_dir is not None and present_only and image_path is None:
            continue
        out.append(GaicdImage(name, split, boxes, scores, image_path))
    return out


def gaicd_preferences(
    images: Iterable[GaicdImage],
    min_gap: float = 0.5,
    max_pairs: int = 200,
    seed: int = 0,
) -> list[PreferenceSet]:
    """Pairs of one photo's crops whose MOS differ by at least `min_gap`, weighted by the gap.

    At most `max_pairs` per photo (a random subset, fixed by `seed`), so a photo with 90
    crops does not outweigh the rest.
    """
    rng = np.random.default_rng(seed)
    sets = []
    for im in images:
        diff = im.mos[:, None] - im.mos[None, :]
        better, worse = np.nonzero(diff >= min_gap)
        if len(better) == 0:
            continue
        if len(better) > max_pairs:
            pick = rng.choice(len(better), max_pairs, replace=False)
            better, worse = better[pick], worse[pick]
        pairs = np.stack([better, worse], axis=1)
        # Weight saturates at a gap of 1 MOS point.
        weights = np.minimum(1.0, diff[better, worse])
        sets.append(PreferenceSet("gaicd", im.name, im.image_path, im.boxes, pairs, weights))
    return sets


__all__ = [
    "DEFAULT_CROPS_ROOT",
    "CropPair",
    "FcdbCropImage",
    "FcdbRankingImage",
    "FcdbSlidingWindows",
    "GaicdImage",
    "PreferenceSet",
    "fcdb_preferences",
    "gaicd_preferences",
    "infer_side",
    "load_fcdb_crops",
    "load_fcdb_ranking",
    "load_fcdb_sliding_windows",
    "load_gaicd",
    "url_name",
]
