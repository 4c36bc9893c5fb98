"""Fairness audit: which face the crop keeps when faces of two groups compete and only one fits.

    python -m training.fairness_audit --faces ../shared/data/faces_demographic --out docs/fairness

The protocol of the 2021 audit of Twitter's saliency cropper (Yee, Tantipongpipat and Mishra,
arXiv 2105.08667), adapted to this engine:
- pairs of adult faces (18-60) from two groups, age-matched (within `AGE_GAP` years) and
  matched on the other attribute (race pairs are same-gender, gender pairs same-race);
- each pair composited side by side (16:9) or in two of the three slots of a 3x1 grid (3:1),
  on a neutral grey or a blurred photo background (../shared/data/photos, never a face
  photo), at a scale, gap and height drawn per pair, and rendered twice with the faces'
  places swapped, so position and the centre bias cannot decide;
- the real engine (`decode_for` + `analyse_image`, the shipped saliency model and YuNet)
  crops each composite at 1:1, 4:5 and 9:16, where only one face fits; the kept face is
  the one whose core lies in the crop;
- beside it, the rule Twitter compared: centre the crop on the single most salient point
  (the face nearer that point is kept), each face's share of the saliency map's mass, and
  a control that must show up: a deliberately biased ranker that prefers the brighter window;
- shares with 95% intervals bootstrapped by face (faces repeat across pairs: both faces'
  draws are resampled, each trial weighted by how often its two faces were drawn);
- YuNet's recall, score and box size per group on the single photos.

The face photos are UTKFace (non-commercial research only): nothing here writes a face's
pixels; the outputs are counts, shares and charts.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from autocrop import CropOptions
from autocrop.candidates import WindowFeatures, Windows
from autocrop.engine import analyse_image, decode_for
from autocrop.face_rule import contains
from autocrop.faces import detect_faces, load_face_detector
from autocrop.options import parse_ratio
from autocrop.ranking import PhotoContext
from autocrop.saliency import load_saliency
from autocrop.types import CropResult

from .cards import dump_card
from .engine_options import parse_overrides
from .datasets import DEFAULT_DATA_ROOT

#: Ratios at which a composite's two faces cannot both fit.
RATIOS = ("1:1", "4:5", "9:16")
#: Adults only: UTKFace is skewed young (Asian male median age 2), and age would confound.
ADULT = (18, 60)
#: Paired faces differ by at most this many years of (labelled) age.
AGE_GAP = 3
RACES = ("white", "black", "asian", "indian")  # "other" is a catch-all label: not a group
GENDERS = ("female", "male")
#: Composite kinds: (canvas width, height, slot centres as fractions of the width).
KINDS = {"side-by-side": (640, 360, None), "grid-3x1": (720, 240, (1 / 6, 1 / 2, 5 / 6))}
BACKGROUNDS = ("grey", "photo")
#: A face tile's side as a share of the canvas height, drawn per pair.
TILE_SHARE = {"side-by-side": (0.42, 0.58), "grid-3x1": (0.7, 0.9)}
#: Side-by-side: the distance between the two faces' centres, as a share of the width.
GAP_SHARE = (0.48, 0.62)
#: Blur of photo backgrounds (px): a scene behind two faces, not a third subject.
BACKGROUND_BLUR = 3.0
#: The part of a tile that is the face (aligned UTKFace crops): kept when at least
#: `KEPT_SHARE` of it lies in the crop.
CORE = (0.25, 0.75)
KEPT_SHARE = 0.5
#: Bootstrap draws for the intervals.
BOOTSTRAP = 2000
#: A departure (percentage points) this small counts as parity.
PARITY_POINTS = 3.0


@dataclass(frozen=True)
class FaceRecord:
    """One labelled face photo."""

    file: str
    age: int
    gender: str
    race: str

    def group(self, attribute: str) -> str:
        return self.race if attribute == "race" else self.gender


@dataclass(frozen=True)
class GroupPair:
    """Two groups of one attribute ("race" or "gender") whose faces compete."""

    attribute: str
    a: str
    b: str

    @property
    def label(self) -> str:
        return f"{self.a} vs {self.b}"

    @property
    def matched_on(self) -> str:
        return "gender" if self.attribute == "race" else "race"


def default_pairs() -> list[GroupPair]:
    """Every pair of the four race groups, and female vs male."""
    return [GroupPair("race", a, b) for a, b in itertools.combinations(RACES, 2)] + [GroupPair("gender", *GENDERS)]


def load_faces(root: Path) -> list[FaceRecord]:
    """labels.csv of a faces_demographic folder."""
    with (root / "labels.csv").open() as f:
        return [FaceRecord(r["file"], int(r["age"]), r["gender"], r["race"]) for r in csv.DictReader(f)]


def adults(records: Iterable[FaceRecord]) -> list[FaceRecord]:
    return [r for r in records if ADULT[0] <= r.age <= ADULT[1]]


def matched_pairs(records: Sequence[FaceRecord], pair: GroupPair, n: int, rng: np.random.Generator) -> list[tuple[FaceRecord, FaceRecord]]:
    """`n` (a, b) pairs of adults: a of group `pair.a`, b of `pair.b`, same `matched_on`
    label, ages within `AGE_GAP`. Every face of group a is used before any is reused."""
    pool_a = [r for r in adults(records) if r.group(pair.attribute) == pair.a and r.race in RACES]
    pool_b = [r for r in adults(records) if r.group(pair.attribute) == pair.b]
    out: list[tuple[FaceRecord, FaceRecord]] = []
    order: list[int] = []
    misses = 0
    while len(out) < n and misses < 10 * n:
        if not order:
            order = list(rng.permutation(len(pool_a)))
        a = pool_a[order.pop()]
        match = [r for r in pool_b if r.group(pair.matched_on) == a.group(pair.matched_on) and abs(r.age - a.age) <= AGE_GAP]
        if not match:
            misses += 1
            continue
        out.append((a, match[int(rng.integers(len(match)))]))
    return out


@dataclass(frozen=True)
class Layout:
    """Where a pair's two faces go: canvas, the two tiles' centres (first face, second), tile side."""

    kind: str
    background: str
    width: int
    height: int
    centres: tuple[tuple[float, float], tuple[float, float]]
    tile: int
    photo: str | None = None


def draw_layout(kind: str, background: str, rng: np.random.Generator, photos: Sequence[Path]) -> Layout:
    """A random layout of `kind` on `background`; the faces' order is swapped by the caller."""
    w, h, slots = KINDS[kind]
    tile = int(round(rng.uniform(*TILE_SHARE[kind]) * h))
    y = h / 2 + rng.uniform(-0.08, 0.08) * h
    if slots is None:
        gap = rng.uniform(*GAP_SHARE) * w
        xs = (w / 2 - gap / 2, w / 2 + gap / 2)
    else:
        i, j = sorted(rng.choice(3, size=2, replace=False))
        xs = (slots[i] * w, slots[j] * w)
    photo = str(photos[int(rng.integers(len(photos)))]) if background == "photo" and photos else None
    return Layout(kind, background if photo or background == "grey" else "grey", w, h, ((xs[0], y), (xs[1], y)), tile, photo)


def feather(size: int) -> np.ndarray:
    """(size, size, 1) alpha: an ellipse opaque over the face and hair, fading to the tile's
    edge, so no square tile edge is the most salient thing in the composite."""
    r = np.hypot(*np.meshgrid(*(np.linspace(-1, 1, size),) * 2))
    return np.clip((1.0 - r) / 0.2, 0.0, 1.0)[..., None].astype(np.float32)


def background(layout: Layout) -> np.ndarray:
    """The layout's canvas: flat grey, or a photo covering it, blurred."""
    if layout.photo is None:
        return np.full((layout.height, layout.width, 3), 128, np.uint8)
    bgr = cv2.imread(layout.photo, cv2.IMREAD_COLOR)
    scale = max(layout.width / bgr.shape[1], layout.height / bgr.shape[0])
    bgr = cv2.resize(bgr, (max(layout.width, round(bgr.shape[1] * scale)), max(layout.height, round(bgr.shape[0] * scale))),
                     interpolation=cv2.INTER_AREA)  # fmt: skip
    y0, x0 = (bgr.shape[0] - layout.height) // 2, (bgr.shape[1] - layout.width) // 2
    bgr = bgr[y0 : y0 + layout.height, x0 : x0 + layout.width]
    return cv2.cvtColor(cv2.GaussianBlur(bgr, (0, 0), BACKGROUND_BLUR), cv2.COLOR_BGR2RGB)


def compose(first: np.ndarray, second: np.ndarray, layout: Layout, canvas: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, tiles): `first` and `second` (RGB face photos) pasted at the layout's centres;
    tiles (2, 4) x0, y0, x1, y1 in the composite's pixels."""
    out = (background(layout) if canvas is None else canvas).astype(np.float32)
    alpha = feather(layout.tile)
    tiles = []
    for face, (cx, cy) in zip((first, second), layout.centres):
        x0, y0 = int(round(cx - layout.tile / 2)), int(round(cy - layout.tile / 2))
        x0 = min(max(x0, 0), layout.width - layout.tile)
        y0 = min(max(y0, 0), layout.height - layout.tile)
        tile = cv2.resize(face, (layout.tile, layout.tile), interpolation=cv2.INTER_AREA).astype(np.float32)
        region = out[y0 : y0 + layout.tile, x0 : x0 + layout.tile]
        region[:] = alpha * tile + (1 - alpha) * region
        tiles.append((x0, y0, x0 + layout.tile, y0 + layout.tile))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), np.array(tiles, np.float64)


def core_of(tiles: np.ndarray) -> np.ndarray:
    """The face part of each tile (x0, y0, x1, y1)."""
    side = tiles[:, 2:] - tiles[:, :2]
    return np.concatenate([tiles[:, :2] + CORE[0] * side, tiles[:, :2] + CORE[1] * side], axis=1)


def kept_face(box: tuple[int, int, int, int], tiles: np.ndarray) -> str:
    """"a", "b", "both" or "none": which faces' cores (share >= KEPT_SHARE) a crop (x, y, w, h) keeps."""
    x, y, w, h = box
    core = core_of(tiles)
    iw = np.clip(np.minimum(x + w, core[:, 2]) - np.maximum(x, core[:, 0]), 0, None)
    ih = np.clip(np.minimum(y + h, core[:, 3]) - np.maximum(y, core[:, 1]), 0, None)
    kept = iw * ih / ((core[:, 2] - core[:, 0]) * (core[:, 3] - core[:, 1])) >= KEPT_SHARE
    return {(True, False): "a", (False, True): "b", (True, True): "both"}.get((bool(kept[0]), bool(kept[1])), "none")


def saliency_masses(sal: np.ndarray, tiles: np.ndarray, width: int, height: int) -> np.ndarray:
    """Each tile's sum of the analysis-size map `sal` (tiles in `width` x `height` px)."""
    sy, sx = sal.shape[0] / height, sal.shape[1] / width
    out = []
    for x0, y0, x1, y1 in tiles:
        out.append(float(sal[int(round(y0 * sy)) : int(round(y1 * sy)), int(round(x0 * sx)) : int(round(x1 * sx))].sum()))
    return np.array(out)


def most_salient_point_face(sal: np.ndarray, tiles: np.ndarray, width: int, height: int) -> str:
    """Twitter's rule: the crop centred on the map's single most salient point keeps the face
    whose centre is nearer that point."""
    r, c = np.unravel_index(int(np.argmax(sal)), sal.shape)
    point = np.array([(c + 0.5) * width / sal.shape[1], (r + 0.5) * height / sal.shape[0]])
    centres = (tiles[:, :2] + tiles[:, 2:]) / 2
    d = np.hypot(*(centres - point).T)
    return "a" if d[0] <= d[1] else "b"


class BrightnessRanker:
    """The control: a deliberately biased ranker that re-orders the engine's face-safe
    shortlist by the mean brightness of the faces each window keeps whole, so it keeps the
    lighter face. The audit must report it as biased; if it does not, the audit cannot see bias."""

    name = "brightness-control"
    scope = "shortlist"

    def __init__(self, rgb: np.ndarray):
        luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
        self.integral = cv2.integral(luma)

    def score(self, photo: PhotoContext, windows: Windows, measured: WindowFeatures, options: CropOptions) -> np.ndarray:
        faces = measured.protected
        if len(faces) == 0:
            return np.zeros(len(windows))
        ii = self.integral
        sx, sy = (ii.shape[1] - 1) / photo.width, (ii.shape[0] - 1) / photo.height
        c0, r0 = np.rint(faces[:, 0] * sx).astype(np.intp), np.rint(faces[:, 1] * sy).astype(np.intp)
        c1 = np.maximum(np.rint((faces[:, 0] + faces[:, 2]) * sx).astype(np.intp), c0 + 1)
        r1 = np.maximum(np.rint((faces[:, 1] + faces[:, 3]) * sy).astype(np.intp), r0 + 1)
        c1, r1 = np.minimum(c1, ii.shape[1] - 1), np.minimum(r1, ii.shape[0] - 1)
        luma = (ii[r1, c1] - ii[r1, c0] - ii[r0, c1] + ii[r0, c0]) / np.maximum((r1 - r0) * (c1 - c0), 1) / 255.0
        inside = contains(windows, faces).astype(np.float64)
        return (inside @ luma) / np.maximum(inside.sum(axis=1), 1)


class _Once:
    """A model stage that remembers its last answer: the control re-ranks the very photo the
    engine just analysed, so it reuses that pass's saliency and faces."""

    def __init__(self, inner: Any, method: str):
        self.inner, self.method, self.name = inner, method, inner.name
        self._key: tuple[Any, ...] | None = None
        self._value: Any = None

    def _call(self, image: np.ndarray, *args: Any) -> Any:
        key = (image.shape, hash(image.tobytes()), args)
        if key != self._key:
            self._key, self._value = key, getattr(self.inner, self.method)(image, *args)
        return self._value


class _OnceSaliency(_Once):
    def predict(self, rgb: np.ndarray) -> np.ndarray:
        return self.inner.predict(rgb)

    def predict_with_features(self, rgb: np.ndarray) -> Any:
        return self._call(rgb)


class _OnceDetector(_Once):
    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        return self._call(bgr, score_threshold)


@dataclass(frozen=True)
class Models:
    """The shipped models, wrapped so the control reuses the engine's passes."""

    saliency: Any
    detector: Any

    @classmethod
    def load(cls, saliency_model: Path | None = None) -> Models:
        """The shipped models, or a candidate saliency model (a .tflite beside its card)."""
        saliency = load_saliency(str(saliency_model) if saliency_model else None)
        return cls(_OnceSaliency(saliency, "predict_with_features"), _OnceDetector(load_face_detector(), "detect"))


def detections_in(result: CropResult, tiles: np.ndarray) -> list[tuple[float, float]]:
    """Per tile, (YuNet's best score, its box area / the tile's area) of the detection
    centred in the tile's core; (0, 0) where none is."""
    core = core_of(tiles)
    out = []
    for (cx0, cy0, cx1, cy1), (tx0, ty0, tx1, ty1) in zip(core, tiles):
        best = (0.0, 0.0)
        for f in result.faces:
            fx, fy = f.box.x + f.box.w / 2, f.box.y + f.box.h / 2
            if cx0 <= fx <= cx1 and cy0 <= fy <= cy1 and f.confidence > best[0]:
                best = (float(f.confidence), f.box.w * f.box.h / ((tx1 - tx0) * (ty1 - ty0)))
        out.append(best)
    return out


def audit_composite(rgb: np.ndarray, tiles: np.ndarray, options: CropOptions, models: Models, control: bool = True) -> dict[str, Any]:
    """One composite through the engine (and the control): per ratio the kept face, and the
    saliency masses, the most-salient-point rule and the detections."""
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    decoded = decode_for(png.tobytes(), options)
    result = analyse_image(decoded, options, saliency=models.saliency, detector=models.detector)
    row: dict[str, Any] = {"engine": {c.ratio: kept_face((c.box.x, c.box.y, c.box.w, c.box.h), tiles) for c in result.crops}}
    if control:
        biased = analyse_image(decoded, options.with_(ranker_shortlist=10_000), saliency=models.saliency,
                               detector=models.detector, ranker=BrightnessRanker(decoded.rgb))  # fmt: skip
        row["control"] = {c.ratio: kept_face((c.box.x, c.box.y, c.box.w, c.box.h), tiles) for c in biased.crops}
    sal = np.asarray(result.saliency, np.float64)
    row["mass"] = saliency_masses(sal, tiles, result.width, result.height).tolist()
    row["argmax"] = most_salient_point_face(sal, tiles, result.width, result.height)
    row["detected"] = detections_in(result, tiles)
    return row


def composites(
    faces_root: Path,
    pairs: Sequence[tuple[GroupPair, FaceRecord, FaceRecord]],
    photos: Sequence[Path],
    seed: int = 0,
    only: Sequence[str] | None = None,
) -> Iterator[tuple[int, GroupPair, FaceRecord, FaceRecord, bool, Layout, np.ndarray, np.ndarray]]:
    """The audit's composites: (pair index, group pair, face a, face b, swapped, layout, RGB
    image, tiles with row 0 always face a's), one layout drawn per pair and rendered in both
    orders. `only` (group pair labels) yields just those pairs; every layout is still drawn,
    so they are the composites of a full run (the analysis scripts under docs/fairness use
    this too)."""
    rng = np.random.default_rng(seed)
    combos = [(k, b) for k in KINDS for b in BACKGROUNDS]
    cache: dict[str, np.ndarray] = {}

    def face(rec: FaceRecord) -> np.ndarray:
        if rec.file not in cache:
            bgr = cv2.imread(str(faces_root / "images" / rec.file), cv2.IMREAD_COLOR)
            cache[rec.file] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return cache[rec.file]

    for i, (group_pair, a, b) in enumerate(pairs):
        kind, bg = combos[i % len(combos)]
        layout = draw_layout(kind, bg, rng, photos)
        if only is not None and group_pair.label not in only:
            continue
        canvas = background(layout)
        for swap in (False, True):
            first, second = (b, a) if swap else (a, b)
            rgb, tiles = compose(face(first), face(second), layout, canvas)
            yield i, group_pair, a, b, swap, layout, rgb, (tiles[::-1] if swap else tiles)


def run_pairs(
    faces_root: Path,
    pairs: Sequence[tuple[GroupPair, FaceRecord, FaceRecord]],
    photos: Sequence[Path],
    options: CropOptions,
    seed: int = 0,
    control: bool = True,
    progress: bool = False,
    only: Sequence[str] | None = None,
    saliency_model: Path | None = None,
) -> list[dict[str, Any]]:
    """Every (group pair, face a, face b) composited once per layout drawn for it, in both
    orders: one trial row per rendering. `only` (group pair labels) runs just those pairs'
    composites; every layout is still drawn, so they are the ones of a full run."""
    models = Models.load(saliency_model)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i, group_pair, a, b, swap, layout, rgb, tiles in composites(faces_root, pairs, photos, seed, only):
        row = audit_composite(rgb, tiles, options, models, control)
        row.update(pair=group_pair.label, attribute=group_pair.attribute, a=a.file, b=b.file, a_age=a.age,
                   b_age=b.age, swap=swap, kind=layout.kind, background=layout.background)  # fmt: skip
        rows.append(row)
        if progress and swap and (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(pairs)} pairs, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return rows


# --- statistics -------------------------------------------------------------------------------


def bootstrap_by_face(a_ids: Sequence[str], b_ids: Sequence[str], values: np.ndarray, draws: int = BOOTSTRAP,
                      seed: int = 0) -> tuple[float, float, float]:  # fmt: skip
    """(mean, 2.5%, 97.5%) of `values` over trials, the interval from resampling faces: each
    side's faces are drawn with replacement and a trial counts as often as both its faces
    were drawn (a two-way cluster bootstrap; faces repeat across trials)."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    weights = np.ones((draws, len(values)))
    for ids in (a_ids, b_ids):
        names, index = np.unique(np.asarray(ids), return_inverse=True)
        counts = rng.multinomial(len(names), np.full(len(names), 1 / len(names)), size=draws)
        weights *= counts[:, index]
    total = weights.sum(axis=1)
    boot = (weights @ values)[total > 0] / total[total > 0]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(values.mean()), float(lo), float(hi)


def kept_share(rows: Sequence[dict[str, Any]], outcome: str, ratio: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Share of decided trials (exactly one face kept) keeping group a's face, with its
    by-face interval and departure from parity (points); `outcome` "engine", "control" or
    "argmax" (one outcome per composite, whatever the ratio)."""
    if outcome == "argmax":
        picks = [(r, r[outcome]) for r in rows]
    else:  # one ratio, or every ratio's trial (None)
        picks = [(r, v) for r in rows if outcome in r for k, v in r[outcome].items() if ratio in (None, k)]
    decided = [(r, v) for r, v in picks if v in ("a", "b")]
    share, lo, hi = bootstrap_by_face([r["a"] for r, _ in decided], [r["b"] for r, _ in decided],
                                      np.array([v == "a" for _, v in decided], np.float64), seed=seed)  # fmt: skip
    return {
        "n": len(decided),
        "both": sum(v == "both" for _, v in picks),
        "none": sum(v == "none" for _, v in picks),
        "share": share,
        "ci": [lo, hi],
        "departure_points": 100 * (share - 0.5),
        "significant": bool(lo > 0.5 or hi < 0.5),
    }


def mass_share(rows: Sequence[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Group a's face's share of the two faces' saliency mass, by-face interval."""
    values = np.array([r["mass"][0] / max(r["mass"][0] + r["mass"][1], 1e-12) for r in rows])
    share, lo, hi = bootstrap_by_face([r["a"] for r in rows], [r["b"] for r in rows], values, seed=seed)
    return {"n": len(rows), "share": share, "ci": [lo, hi]}


def summarise(rows: Sequence[dict[str, Any]], ratios: Sequence[str] = RATIOS, seed: int = 0) -> dict[str, Any]:
    """Per group pair: the engine's kept share per ratio and pooled, the control's, the
    most-salient-point rule's, the saliency mass share and the composites' detections."""
    out: dict[str, Any] = {}
    for label in dict.fromkeys(r["pair"] for r in rows):
        sub = [r for r in rows if r["pair"] == label]
        entry: dict[str, Any] = {"engine": {}, "control": {}}
        for ratio in (*ratios, None):
            key = ratio or "all"
            entry["engine"][key] = kept_share(sub, "engine", ratio, seed)
            if any("control" in r for r in sub):
                entry["control"][key] = kept_share(sub, "control", ratio, seed)
        entry["most_salient_point"] = kept_share(sub, "argmax", None, seed)
        entry["saliency_mass"] = mass_share(sub, seed)
        det = np.array([r["detected"] for r in sub])  # (trials, 2 faces, (score, area))
        entry["detected_in_composites"] = {
            side: {"recall": float((det[:, k, 0] > 0).mean()),
                   "score": float(det[:, k, 0][det[:, k, 0] > 0].mean()) if (det[:, k, 0] > 0).any() else None,
                   "box_area_of_tile": float(det[:, k, 1][det[:, k, 0] > 0].mean()) if (det[:, k, 0] > 0).any() else None}
            for k, side in enumerate(label.split(" vs "))
        }  # fmt: skip
        out[label] = entry
    return out


def detector_by_group(faces_root: Path, records: Sequence[FaceRecord], options: CropOptions) -> dict[str, Any]:
    """YuNet (the engine's face pass) on each single face photo, per group: recall (a face
    centred in the photo's middle half is found), mean score and box width of the found.
    Adults and all ages, by race x gender, race and gender."""
    detector = load_face_detector()
    found: dict[str, tuple[bool, float, float]] = {}
    for rec in records:
        rgb = cv2.cvtColor(cv2.imread(str(faces_root / "images" / rec.file), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        best = (False, 0.0, 0.0)
        for x, y, fw, fh, score in detect_faces(rgb, detector, options):
            cx, cy = x + fw / 2, y + fh / 2
            if w / 4 <= cx <= 3 * w / 4 and h / 4 <= cy <= 3 * h / 4 and score > best[1]:
                best = (True, float(score), float(fw / w))
        found[rec.file] = best
    out: dict[str, Any] = {}
    for scope, recs in (("adults", adults(records)), ("all_ages", list(records))):
        groups: dict[str, list[FaceRecord]] = {}
        for r in recs:
            if r.race not in RACES:
                continue
            for key in (r.race, r.gender, f"{r.race} {r.gender}"):
                groups.setdefault(key, []).append(r)
        table = {}
        for key, members in groups.items():
            hits = [found[r.file] for r in members if found[r.file][0]]
            table[key] = {
                "n": len(members),
                "recall": len(hits) / len(members),
                "score": float(np.mean([s for _, s, _ in hits])) if hits else None,
                "box_width": float(np.mean([bw for _, _, bw in hits])) if hits else None,
            }
        out[scope] = table
    return out


# --- report -----------------------------------------------------------------------------------


def _pct(entry: dict[str, Any]) -> str:
    if not entry or entry["n"] == 0:
        return "-"
    lo, hi = entry["ci"]
    star = " *" if entry.get("significant") else ""
    return f"{100 * entry['share']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]{star}"


def format_tables(summary: dict[str, Any], ratios: Sequence[str] = RATIOS) -> str:
    """Markdown: per pair and ratio the share keeping the first group's face (95% CI, * = CI excludes 50)."""
    lines = ["| pair (first group's share kept) | " + " | ".join(ratios) + " | all ratios | departure (pts) | n | most salient point | control (brighter) | saliency mass |",
             "|---" * (len(ratios) + 7) + "|"]  # fmt: skip
    for label, e in summary.items():
        cells = [_pct(e["engine"][r]) for r in ratios]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {_pct(e['engine']['all'])} | "
                     f"{e['engine']['all']['departure_points']:+.1f} | {e['engine']['all']['n']} | "
                     f"{_pct(e['most_salient_point'])} | {_pct(e['control'].get('all', {}))} | {_pct(e['saliency_mass'])} |")  # fmt: skip
    return "\n".join(lines)


def format_detector(table: dict[str, Any]) -> str:
    lines = ["| group | n | recall | mean score | box width / photo |", "|---|---|---|---|---|"]
    for key, v in table.items():
        score = f"{v['score']:.3f}" if v["score"] is not None else "-"
        width = f"{v['box_width']:.3f}" if v["box_width"] is not None else "-"
        lines.append(f"| {key} | {v['n']} | {v['recall']:.3f} | {score} | {width} |")
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path, compare: dict[str, Any] | None = None, compare_label: str = "before",
         label: str = "engine") -> None:  # fmt: skip
    """A chart of the kept shares (pooled over ratios) with their intervals: one row per pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(summary)
    fig, ax = plt.subplots(figsize=(8.5, 0.55 * len(labels) + 2.6))
    ax.axvspan(50 - PARITY_POINTS, 50 + PARITY_POINTS, color="0.9", label=f"parity +-{PARITY_POINTS:g} pts")
    ax.axvline(50, color="0.4", lw=1)
    series = [("most salient point", lambda e: e["most_salient_point"], "tab:orange", "s"),
              ("control: prefers the brighter face", lambda e: e["control"].get("all"), "tab:red", "x")]  # fmt: skip
    if compare is not None:
        series.append((f"engine, {compare_label}", lambda e, c=compare: c.get(e["_label"], {}).get("engine", {}).get("all"), "tab:gray", "D"))
    series.append((label, lambda e: e["engine"]["all"], "tab:blue", "o"))
    for k, (name, get, colour, marker) in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * 0.16
        for i, lab in enumerate(labels):
            entry = get({**summary[lab], "_label": lab})
            if not entry or not entry.get("n"):
                continue
            s, (lo, hi) = 100 * entry["share"], entry["ci"]
            ax.errorbar(s, i + offset, xerr=[[s - 100 * lo], [100 * hi - s]], fmt=marker, color=colour, capsize=3,
                        label=name if i == 0 else None)  # fmt: skip
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of crops keeping the first group's face (95% CI, bootstrapped by face)")
    ax.set_title("Which face the crop keeps (1:1, 4:5, 9:16 pooled; adult, age-matched pairs)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def card_section(summary: dict[str, Any], detector: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The model card's "fairness" section: the headline figures of an audit (the card stays
    small; every figure is in the audit's audit.json, which the section names)."""
    adults = detector.get("adults", {})
    groups = [g for g in adults if " " not in g]  # race and gender groups (intersections: audit.json)
    return {
        **meta,
        "doc": "docs/fairness.md (protocol, every figure, what changed)",
        "figures": "docs/fairness/audit.json",
        "kept_share_first_group": {
            label: {"share": round(e["engine"]["all"]["share"], 3), "ci": [round(v, 3) for v in e["engine"]["all"]["ci"]]}
            for label, e in summary.items()
        },
        "largest_departure_points": round(max(abs(e["engine"]["all"]["departure_points"]) for e in summary.values()), 1),
        "control_brighter_face": {label: round(e["control"]["all"]["share"], 3) for label, e in summary.items() if e["control"]},
        "yunet_recall_single_photos_adults": {g: round(adults[g]["recall"], 3) for g in groups},
        "fewest_adult_faces_in_a_group": min((adults[g]["n"] for g in adults), default=0),
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_DATA_ROOT / "faces_demographic")
    parser.add_argument("--photos", type=Path, default=DEFAULT_DATA_ROOT / "photos", help="background photos (no faces set)")
    parser.add_argument("--out", type=Path, required=True, help="folder for audit.json, tables.md and kept_share.png")
    parser.add_argument("--pairs", type=int, default=200, help="age-matched pairs per group pair (each rendered twice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="engine option")
    parser.add_argument("--compare", type=Path, help="an earlier audit.json to plot beside this one")
    parser.add_argument("--compare-label", default="before")
    parser.add_argument("--label", default="engine", help="this run's name in the chart")
    parser.add_argument("--no-control", action="store_true", help="skip the biased control ranker")
    parser.add_argument("--card", type=Path, help="write the figures into this model card's \"fairness\" section")
    parser.add_argument("--group-pairs", help="comma-separated group pairs to run, e.g. 'white vs black,black vs indian' "
                        "(default all; the pairs and layouts drawn are those of a full run)")
    parser.add_argument("--no-detector", action="store_true", help="skip YuNet on the single photos")
    parser.add_argument("--model", type=Path, help="a candidate saliency model (.tflite beside its card) instead of the shipped one")
    parser.add_argument("--rows", action="store_true", help="also write every trial (face file names, outcomes) to rows.json")
    args = parser.parse_args(argv)
    options = CropOptions(ratios=RATIOS, **parse_overrides(args.overrides))
    assert all(parse_ratio(r) <= 1 for r in RATIOS)
    start = time.perf_counter()
    records = load_faces(args.faces)
    rng = np.random.default_rng(args.seed)
    trials = [(gp, a, b) for gp in default_pairs() for a, b in matched_pairs(records, gp, args.pairs, rng)]
    photos = sorted(p for p in args.photos.rglob("*.jpg"))
    print(f"{len(trials)} pairs, {2 * len(trials)} composites", file=sys.stderr)
    only = [p.strip() for p in args.group_pairs.split(",")] if args.group_pairs else None
    if only is not None:
        unknown = set(only) - {gp.label for gp in default_pairs()}
        if unknown:
            parser.error(f"unknown group pairs: {sorted(unknown)}")
    rows = run_pairs(args.faces, trials, photos, options, args.seed, control=not args.no_control, progress=True, only=only,
                     saliency_model=args.model)
    summary = summarise(rows, seed=args.seed)
    detector = {} if args.no_detector else detector_by_group(args.faces, records, CropOptions())
    elapsed = time.perf_counter() - start
    meta = {"date": date.today().isoformat(), "command": "python -m training.fairness_audit " + " ".join(argv or sys.argv[1:]),
            "pairs_per_group_pair": args.pairs, "composites": len(rows), "seconds": round(elapsed), "options": args.overrides,
            "saliency_model": str(args.model) if args.model else "shipped"}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "audit.json").write_text(json.dumps({"meta": meta, "summary": summary, "detector": detector}, indent=1) + "\n")
    if args.rows:
        (args.out / "rows.json").write_text(json.dumps(rows) + "\n")
    tables = format_tables(summary) + "\n\nYuNet on the single photos (adults):\n\n" + format_detector(detector.get("adults", {}))
    (args.out / "tables.md").write_text(tables + "\n")
    compare = json.loads(args.compare.read_text())["summary"] if args.compare else None
    plot(summary, args.out / "kept_share.png", compare, args.compare_label, args.label)
    if args.card:
        card = json.loads(args.card.read_text())
        card["fairness"] = card_section(summary, detector, meta)
        args.card.write_text(dump_card(card))
    print(tables)
    print(f"{len(rows)} composites in {elapsed:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
