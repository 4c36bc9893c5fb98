"""Ranking candidate windows: a learned ranker on the shared backbone pass, with the
composition score as the labelled, model-free fallback.

The learned ranker keeps the original project's idea (a model that learned which of two
crops people prefer) without one network pass per candidate: the saliency model's single
pass also returns stride-16 encoder features of the whole photo, and each candidate's
features are pooled from that map, as GAIC does:

- the window, pooled over a 3 x 3 grid of bins (RoIAlign's layout; each bin is the exact
  mean of the map over the bin, read from an integral image of the map, so the cost per
  window does not depend on its size);
- the discarded border (GAIC's RoD): the mean of the map over the photo outside the window;
- the whole photo's mean, so the head can condition on the kind of scene;
- named statistics of geometry, saliency (from the engine's integral image) and faces.

A small MLP head (exported to TFLite, `models/ranker.tflite`, card `models/ranker.json`)
maps each candidate's descriptor to a score. It re-ranks the composition score's shortlist
(the best `ranker_shortlist` windows that obey the hard rules), so every rule of the
candidate stage still holds and the cost stays fixed (~200 windows a ratio).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from .candidates import SaliencyIndex, WindowFeatures, Windows
from .face_rule import contains, face_importance, head_boxes, protected_faces, rects_of, sliced
from .options import CropOptions
from .preprocess import Letterbox
from .scoring import RANKER_NAME as COMPOSITION_NAME
from .scoring import composition_terms, total_score

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_RANKER_MODEL = MODELS_DIR / "ranker.tflite"
#: Signatures of the shipped model: per-cell channel reduction, then the scoring head.
REDUCE_SIGNATURE, SCORE_SIGNATURE = "reduce", "score"
#: Bins per side of the window's feature grid (RoIAlign's output size).
GRID = 3
#: Feature regions per window: the GRID x GRID bins, the discarded border, the whole photo.
REGIONS = GRID * GRID + 2
#: Window statistics fed to the head beside the pooled features, in input order.
STAT_NAMES = (
    # geometry, relative to the photo
    "x0", "y0", "x1", "y1", "area_frac", "scale", "log_aspect", "log_photo_aspect",
    "centre_dx", "centre_dy",
    # the composition score's terms, unweighted
    "saliency_kept", "saliency_of_best", "faces_share", "head_cut", "edge_cut", "position",
    "area_rel", "saliency_density",
    # saliency at the edges: the most salient band just inside / just outside an edge, and
    # the worst edge (salient on both sides: a subject sliced)
    "edge_inner_max", "edge_outer_max", "edge_cut_max",
    # where the kept saliency sits in the window: 3 x 3 shares, centroid, rule of thirds
    *(f"saliency_bin{i}{j}" for i in range(GRID) for j in range(GRID)),
    "centroid_dx", "centroid_dy", "thirds_distance",
    # faces (detected; the protected ones)
    "has_faces", "faces_cut_share", "faces_roomy_share",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class PhotoContext:
    """What ranking needs of one photo, shared by all its ratios.

    `features` is the saliency pass's (S, S, C) stride-16 map over the letterboxed canvas
    (None when the saliency stage ran its model-free fallback); `letterbox` places the
    photo in the canvas. `faces` are (N, 5) x, y, w, h, score in full-resolution px.
    Integral images of the (optionally channel-reduced) map are built once per photo.
    """

    width: int
    height: int
    index: SaliencyIndex
    faces: np.ndarray
    features: np.ndarray | None = None
    cells_per_px: tuple[float, float] = (0.0, 0.0)  # feature cells per full-res px (x, y)
    content: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # the photo, in cells
    _integrals: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        width: int,
        height: int,
        index: SaliencyIndex,
        faces: np.ndarray,
        features: np.ndarray | None = None,
        letterbox: Letterbox | None = None,
    ) -> PhotoContext:
        """The context of a photo; `features` + `letterbox` come from the saliency pass."""
        faces = np.asarray(faces, np.float64).reshape(-1, 5)
        if features is None or letterbox is None:
            return cls(width, height, index, faces)
        side = features.shape[0]
        stride = letterbox.canvas / side  # canvas px per cell
        content = (
            letterbox.x / stride,
            letterbox.y / stride,
            (letterbox.x + letterbox.w) / stride,
            (letterbox.y + letterbox.h) / stride,
        )
        cells = (letterbox.w / stride / width, letterbox.h / stride / height)
        return cls(width, height, index, faces, np.asarray(features, np.float32), cells, content)

    @property
    def has_features(self) -> bool:
        return self.features is not None

    def feature_integral(
        self, reduce: Callable[[np.ndarray], np.ndarray] | None = None, key: str = "raw"
    ) -> np.ndarray:
        """(S+1, S+1, C') integral image of `reduce(features)` (a linear per-cell map), cached by `key`."""
        if self.features is None:
            raise ValueError("this photo has no feature map to pool from")
        if key not in self._integrals:
            f = self.features
            if reduce is not None:
                f = reduce(f.reshape(-1, f.shape[-1])).reshape(*f.shape[:2], -1)
            ii = np.zeros((f.shape[0] + 1, f.shape[1] + 1, f.shape[2]), np.float64)
            ii[1:, 1:] = np.asarray(f, np.float64).cumsum(0).cumsum(1)
            self._integrals[key] = ii
        return self._integrals[key]


def _integral_at(ii: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Integral image at fractional cell coordinates; u: (N, A), v: (N, B) -> (N, B, A, C).

    Bilinear interpolation of the integral is exact for a map constant over each cell.
    """
    rows, cols = ii.shape[0] - 1, ii.shape[1] - 1
    u = np.clip(u, 0.0, cols)
    v = np.clip(v, 0.0, rows)
    u0 = np.minimum(np.floor(u).astype(np.intp), cols - 1)
    v0 = np.minimum(np.floor(v).astype(np.intp), rows - 1)
    fu = (u - u0)[:, None, :, None]
    fv = (v - v0)[:, :, None, None]
    r0, r1 = v0[:, :, None], v0[:, :, None] + 1
    c0, c1 = u0[:, None, :], u0[:, None, :] + 1
    top = ii[r0, c0] * (1 - fu) + ii[r0, c1] * fu
    bottom = ii[r1, c0] * (1 - fu) + ii[r1, c1] * fu
    return top * (1 - fv) + bottom * fv


def pool_regions(photo: PhotoContext, boxes: np.ndarray, integral: np.ndarray | None = None) -> np.ndarray:
    """(N, REGIONS, C) features of (x, y, w, h) full-res boxes: 3x3 bins, border, photo.

    `integral` defaults to the raw feature map's; pass a reduced map's to pool fewer channels.
    """
    ii = photo.feature_integral() if integral is None else integral
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    n = len(boxes)
    cx, cy = photo.cells_per_px
    ox, oy, ox1, oy1 = photo.content
    steps = np.arange(GRID + 1) / GRID
    u = ox + (boxes[:, 0:1] + boxes[:, 2:3] * steps) * cx  # (N, GRID+1)
    v = oy + (boxes[:, 1:2] + boxes[:, 3:4] * steps) * cy
    at = _integral_at(ii, u, v)  # (N, GRID+1, GRID+1, C)
    sums = at[:, 1:, 1:] - at[:, :-1, 1:] - at[:, 1:, :-1] + at[:, :-1, :-1]  # (N, G, G, C)
    bin_area = (np.diff(u, axis=1)[:, None, :] * np.diff(v, axis=1)[:, :, None])[..., None]
    bins = sums / np.maximum(bin_area, 1e-9)
    window_sum = at[:, -1, -1] - at[:, 0, -1] - at[:, -1, 0] + at[:, 0, 0]
    window_area = (u[:, -1] - u[:, 0]) * (v[:, -1] - v[:, 0])
    c = _integral_at(ii, np.array([[ox, ox1]]), np.array([[oy, oy1]]))[0]
    photo_sum = c[1, 1] - c[0, 1] - c[1, 0] + c[0, 0]
    photo_area = (ox1 - ox) * (oy1 - oy)
    rest_area = photo_area - window_area
    # A window (almost) as large as the photo discards nothing: its border features are 0.
    border = np.where(
        (rest_area > 1e-3)[:, None],
        (photo_sum[None, :] - window_sum) / np.maximum(rest_area, 1e-3)[:, None],
        0.0,
    )
    whole = np.broadcast_to(photo_sum / max(photo_area, 1e-9), (n, ii.shape[2]))
    out = np.concatenate([bins.reshape(n, GRID * GRID, -1), border[:, None], whole[:, None]], axis=1)
    return out.astype(np.float32)


def window_stats(
    photo: PhotoContext, windows: Windows, measured: WindowFeatures, options: CropOptions
) -> np.ndarray:
    """(N, len(STAT_NAMES)) named statistics of each window (see STAT_NAMES)."""
    W, H = float(photo.width), float(photo.height)
    x0, y0 = windows.x.astype(np.float64), windows.y.astype(np.float64)
    w, h = windows.w.astype(np.float64), windows.h.astype(np.float64)
    area_frac = w * h / (W * H)
    geometry = [
        x0 / W, y0 / H, (x0 + w) / W, (y0 + h) / H, area_frac, windows.scale.astype(np.float64),
        np.log(w / h), np.full_like(w, math.log(W / H)),
        (x0 + w / 2) / W - 0.5, (y0 + h / 2) / H - 0.5,
    ]  # fmt: skip
    density = measured.saliency_kept / np.maximum(area_frac, 1e-9)
    terms = [
        measured.saliency_kept, measured.saliency_of_best, measured.faces_share, measured.head_cut,
        measured.edge_cut, measured.position, measured.area, np.minimum(density, 5.0),
    ]  # fmt: skip
    edges = edge_bands(photo, windows, options)
    # Saliency over the 3 x 3 bins of each window, as shares of the window's saliency.
    steps = np.arange(GRID + 1) / GRID
    gx = x0[:, None] + w[:, None] * steps  # (N, GRID+1)
    gy = y0[:, None] + h[:, None] * steps
    sums = photo.index.sums(
        gx[:, None, :-1], gy[:, :-1, None], gx[:, None, 1:], gy[:, 1:, None]
    )  # (N, GRID, GRID): rows are y
    sums = np.clip(sums, 0.0, None)
    shares = sums / np.maximum(sums.sum(axis=(1, 2), keepdims=True), 1e-12)
    centres = (np.arange(GRID) + 0.5) / GRID - 0.5  # bin centres, window units from its centre
    cdx = (shares.sum(axis=1) * centres).sum(axis=1)
    cdy = (shares.sum(axis=2) * centres).sum(axis=1)
    thirds = np.array([-1 / 6, 1 / 6])
    thirds_distance = np.sqrt(
        np.min((cdx[:, None] - thirds) ** 2, axis=1) + np.min((cdy[:, None] - thirds) ** 2, axis=1)
    )
    layout = [*shares.reshape(len(windows), -1).T, cdx, cdy, thirds_distance]
    faces = face_stats(photo, windows, options)
    stats = np.stack([*geometry, *terms, *edges.T, *layout, *faces.T], axis=1)
    assert stats.shape[1] == len(STAT_NAMES)
    return stats.astype(np.float32)


def edge_bands(photo: PhotoContext, windows: Windows, options: CropOptions) -> np.ndarray:
    """(N, 3): max over edges of the mean saliency just inside, just outside, and of their minimum.

    Bands are `edge_band` x the window's shorter side deep (as the composition score's edge
    term); an edge on the photo's border has nothing outside. Relative to the map's peak.
    """
    W, H = photo.width, photo.height
    x0, y0 = windows.x.astype(np.float64), windows.y.astype(np.float64)
    x1, y1 = x0 + windows.w, y0 + windows.h
    d = options.edge_band * np.minimum(windows.w, windows.h)
    index = photo.index

    def means(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> np.ndarray:
        c0, r0, c1, r1 = index.cells(x0, y0, x1, y1)  # the analysis cells the sums cover
        area = (c1 - c0) * (r1 - r0)
        return np.where(area > 0, index.sums(x0, y0, x1, y1) / np.maximum(area, 1), 0.0)

    inner = np.stack([
        means(x0, y0, x0 + d, y1), means(x1 - d, y0, x1, y1),
        means(x0, y0, x1, y0 + d), means(x0, y1 - d, x1, y1),
    ], axis=1)  # fmt: skip
    outer = np.stack([
        means(np.maximum(x0 - d, 0), y0, x0, y1), means(x1, y0, np.minimum(x1 + d, W), y1),
        means(x0, np.maximum(y0 - d, 0), x1, y0), means(x0, y1, x1, np.minimum(y1 + d, H)),
    ], axis=1)  # fmt: skip
    open_edge = np.stack([x0 > 0, x1 < W, y0 > 0, y1 < H], axis=1)
    outer = np.where(open_edge, outer, 0.0)
    peak = max(photo.index.peak, 1e-9)
    return np.stack([inner.max(axis=1), outer.max(axis=1), np.minimum(inner, outer).max(axis=1)], axis=1) / peak


def face_stats(photo: PhotoContext, windows: Windows, options: CropOptions) -> np.ndarray:
    """(N, 3): the photo has protected faces; importance share sliced; share kept with room.

    Protected faces are those of at least `face_min_size` of the long side; a face's
    importance is its area x confidence; "with room" means its head (face plus the
    `face_margin_*` margins) lies inside the window, as the face rule wants it.
    """
    n = len(windows)
    f = protected_faces(photo.faces, photo.width, photo.height, options)
    importance = face_importance(f)
    if importance.sum() <= 0:
        return np.zeros((n, 3))
    total = importance.sum()
    cut = (sliced(windows, rects_of(f)) * importance).sum(axis=1) / total
    heads = head_boxes(f, photo.width, photo.height, options)
    room = (contains(windows, np.concatenate([heads[:, :2], heads[:, 2:] - heads[:, :2]], axis=1)) * importance).sum(axis=1) / total
    return np.stack([np.ones(n), cut, room], axis=1)


def describe_windows(
    photo: PhotoContext,
    windows: Windows,
    measured: WindowFeatures,
    options: CropOptions,
    integral: np.ndarray | None = None,
) -> np.ndarray:
    """(N, REGIONS x C + len(STAT_NAMES)) descriptors: pooled features, then statistics.

    The one preprocessing function of the ranker: training, export and runtime all call it
    (the runtime with the integral of the channel-reduced map, see `LearnedRanker`).
    """
    boxes = np.stack([windows.x, windows.y, windows.w, windows.h], axis=1)
    regions = pool_regions(photo, boxes, integral)
    stats = window_stats(photo, windows, measured, options)
    return np.concatenate([regions.reshape(len(boxes), -1), stats], axis=1)


# --- rankers ---------------------------------------------------------------------------------


class Ranker(Protocol):
    """Scores windows of one ratio (higher is better)."""

    name: str

    def score(
        self, photo: PhotoContext, windows: Windows, measured: WindowFeatures, options: CropOptions
    ) -> np.ndarray: ...


class CompositionRanker:
    """The model-free fallback: the composition score of `scoring.py`."""

    name = COMPOSITION_NAME

    def score(
        self, photo: PhotoContext, windows: Windows, measured: WindowFeatures, options: CropOptions
    ) -> np.ndarray:
        return total_score(composition_terms(measured, options))


class LearnedRanker:
    """The composition score plus a learned correction (TFLite, two signatures) over `describe_windows`.

    The correction was trained on human preferences with the composition score as a fixed
    offset, so the learned ranker starts from the transparent score (and keeps honouring the
    caller's weights, focal point and boosts through it) and moves away from it only where
    people's preferences say so.

    `reduce` maps the backbone's C channels to the head's P per feature cell (linear, so it
    runs once per photo, before pooling); `score` maps (N, REGIONS x P + G) descriptors to
    scores. Needs the saliency pass's features; float32 in and out.
    """

    def __init__(self, path: Path | str = DEFAULT_RANKER_MODEL, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        card_path = self.path.with_suffix(".json")
        self.card: dict[str, Any] = json.loads(card_path.read_text()) if card_path.exists() else {}
        self.name = f"ranker:{self.card.get('name', self.path.stem)}"
        #: What the model was trained to decide (see `rank_candidates`).
        self.scope = str(self.card.get("scope", "position"))
        #: Whether validation showed it better than the composition score (`ranker="auto"`).
        self.beats_composition = bool(self.card.get("validation", {}).get("beats_composition", False))
        expected = self.card.get("stats")
        if expected is not None and tuple(expected) != STAT_NAMES:
            raise ValueError(f"{self.path} was trained on other window statistics than this code computes")
        self._interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        self._reduce = self._interpreter.get_signature_runner(REDUCE_SIGNATURE)
        self._score = self._interpreter.get_signature_runner(SCORE_SIGNATURE)
        self.channels = int(self._reduce.get_input_details()["features"]["shape_signature"][-1])
        self.reduced = int(self._reduce.get_output_details()["reduced"]["shape_signature"][-1])
        width = int(self._score.get_input_details()["descriptor"]["shape_signature"][-1])
        if width != REGIONS * self.reduced + len(STAT_NAMES):
            raise ValueError(f"{self.path}: descriptor width {width} does not match this code's layout")
        self._lock = threading.Lock()  # interpreters are not thread-safe

    def reduce(self, features: np.ndarray) -> np.ndarray:
        """(K, C) feature cells -> (K, P)."""
        if features.shape[-1] != self.channels:
            raise ValueError(f"feature map has {features.shape[-1]} channels, the ranker wants {self.channels}")
        with self._lock:
            return self._reduce(features=np.ascontiguousarray(features, np.float32))["reduced"]

    def score_descriptors(self, x: np.ndarray) -> np.ndarray:
        """Scores of (N, D) descriptors."""
        with self._lock:
            return self._score(descriptor=np.ascontiguousarray(x, np.float32))["score"].reshape(-1)

    def correction(
        self, photo: PhotoContext, windows: Windows, measured: WindowFeatures, options: CropOptions
    ) -> np.ndarray:
        """The learned term alone, in composition-score units."""
        if not photo.has_features:
            raise ValueError("the learned ranker needs the saliency model's features")
        integral = photo.feature_integral(self.reduce, key=self.name)
        return self.score_descriptors(describe_windows(photo, windows, measured, options, integral))

    def score(
        self, photo: PhotoContext, windows: Windows, measured: WindowFeatures, options: CropOptions
    ) -> np.ndarray:
        """The composition score plus the learned correction."""
        composition = total_score(composition_terms(measured, options))
        return composition + self.correction(photo, windows, measured, options)


@lru_cache(maxsize=4)
def ranker_beats_composition(path: str | None = None) -> bool:
    """Whether the shipped ranker's model card says it beat the composition score in
    validation: read from the card alone, so `ranker="auto"` decides without building the
    model's interpreter (a cold-start cost) when the card already says no."""
    card_path = (Path(path) if path else DEFAULT_RANKER_MODEL).with_suffix(".json")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError):
        return False
    return bool(card.get("validation", {}).get("beats_composition", False)) if isinstance(card, dict) else False


@lru_cache(maxsize=4)
def load_ranker(path: str | None = None, num_threads: int = 1) -> Ranker:
    """The process-wide learned ranker, or the composition score when it cannot load."""
    model_path = Path(path) if path else DEFAULT_RANKER_MODEL
    try:
        return LearnedRanker(model_path, num_threads=num_threads)
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        log.warning("ranker model unavailable (%s); using the composition score", e)
        return CompositionRanker()


# --- ranking one ratio -------------------------------------------------------------------------

T = TypeVar("T", Windows, WindowFeatures)


def take(values: T, index: np.ndarray) -> T:
    """The rows `index` of every array field of a Windows / WindowFeatures (a subset of
    windows is no longer a grid: it drops the grid description)."""
    return replace(
        values,
        **{f.name: getattr(values, f.name)[index] if f.name != "grids" else () for f in fields(values)},
    )


@dataclass(frozen=True, eq=False)
class Ranking:
    """Feasible windows best first, each window's score and score terms, and who chose."""

    order: np.ndarray
    score: np.ndarray  # per window
    terms: dict[str, np.ndarray]  # per window, weighted; they add up to `score`
    chosen_by: str


def face_safe(shortlist: np.ndarray, measured: WindowFeatures) -> np.ndarray:
    """The shortlisted windows that slice detected heads no more than the composition's pick.

    The face rule is the engine's, not the model's: where the rule had to be relaxed, the
    learned ranker may not trade a sliced head for anything else.
    """
    if len(shortlist) == 0:
        return shortlist
    cut = measured.head_cut[shortlist]
    return shortlist[cut <= cut[0] + 1e-9]


def rank_candidates(
    ranker: Ranker,
    photo: PhotoContext,
    windows: Windows,
    measured: WindowFeatures,
    options: CropOptions,
    shortlist: int = 200,
    limit: int | None = None,
) -> Ranking:
    """Rank one ratio's windows: composition shortlist, then `ranker` re-ranks it.

    The composition score always orders the feasible windows first; a learned ranker
    re-orders the best `shortlist` of them (those no less face-safe than the first, see
    `face_safe`; with a ranker of scope "position", only those of the first one's size:
    the composition score picks the size, the ranker where the window sits); the rest
    follow in composition order. When the learned ranker cannot run (no feature
    map: the saliency stage fell back), the composition order stands and says so.
    With `limit`, only the best max(`limit`, `shortlist`) windows are ordered.
    """
    terms = composition_terms(measured, options)
    composition = total_score(terms)
    feasible = np.flatnonzero(measured.feasible)
    learned_runs = not isinstance(ranker, CompositionRanker) and photo.has_features
    keep = None if limit is None else max(limit, shortlist if learned_runs else 0)
    if keep is not None and keep < len(feasible):
        # Partial selection: only the best `keep` need sorting.
        top = np.argpartition(-composition[feasible], keep - 1)[:keep]
        feasible = np.sort(feasible[top])
    # Stable: among equal scores the earlier (larger, then top-left) window wins.
    order = feasible[np.argsort(-composition[feasible], kind="stable")]
    if not learned_runs or len(order) == 0:
        return Ranking(order, composition, terms, COMPOSITION_NAME)
    short = face_safe(order[:shortlist], measured)
    if getattr(ranker, "scope", "shortlist") == "position":
        first = short[0]
        short = short[(windows.w[short] == windows.w[first]) & (windows.h[short] == windows.h[first])]
    learned = ranker.score(photo, take(windows, short), take(measured, short), options)
    # Windows outside the shortlist keep their composition score (no correction).
    score = composition.astype(np.float64).copy()
    score[short] = learned
    rest = order[~np.isin(order, short)]
    reordered = np.concatenate([short[np.argsort(-learned, kind="stable")], rest])
    return Ranking(reordered, score, {**terms, "learned": score - composition}, ranker.name)


__all__ = [
    "DEFAULT_RANKER_MODEL",
    "GRID",
    "REGIONS",
    "STAT_NAMES",
    "CompositionRanker",
    "LearnedRanker",
    "PhotoContext",
    "Ranker",
    "Ranking",
    "describe_windows",
    "edge_bands",
    "face_safe",
    "face_stats",
    "load_ranker",
    "pool_regions",
    "rank_candidates",
    "take",
    "window_stats",
]
