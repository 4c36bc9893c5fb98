"""Ranking one ratio's candidate windows: the one ordering rule, and who may re-rank.

The composition score (`scoring.py`) always orders the feasible windows (`order_by`, the
ordering the engine, the ranker's training and its export all call). A learned ranker
(`ranker.py`, imported only when it may run: `ranker_choice`) re-orders the best of them: the face-safe
head of the order (`face_safe`), of the first window's size with scope "position".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from .candidates import SaliencyIndex, WindowFeatures, Windows
from .face_rule import contains, face_importance
from .options import CropOptions
from .preprocess import Letterbox
from .scoring import RANKER_NAME as COMPOSITION_NAME
from .scoring import composition_score, composition_terms, total_score

DEFAULT_RANKER_MODEL = Path(__file__).parent / "models" / "ranker.tflite"
#: How many of the best windows `break_face_ties` looks at for near-ties.
NEAR_TIES = 2000
#: What a learned ranker decides when its card does not say: "position" (where the window of
#: the composition score's chosen size sits) or "shortlist" (any window of the shortlist).
DEFAULT_SCOPE = "position"


@dataclass(frozen=True, eq=False)
class PhotoContext:
    """What ranking needs of one photo, shared by all its ratios.

    `faces` are (N, 5) x, y, w, h, score in full-resolution px. `features` is the saliency
    pass's (S, S, C) stride-16 map over the letterboxed canvas (None after the model-free
    fallback); `cells_per_px` and `content` place the photo in it (cells per px, and the
    photo's x0, y0, x1, y1 in cells). Integral images of the map are built once per photo.
    """

    width: int
    height: int
    index: SaliencyIndex
    faces: np.ndarray
    features: np.ndarray | None = None
    cells_per_px: tuple[float, float] = (0.0, 0.0)
    content: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    _integrals: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls, width: int, height: int, index: SaliencyIndex, faces: np.ndarray,
        features: np.ndarray | None = None, letterbox: Letterbox | None = None,
    ) -> PhotoContext:  # fmt: skip
        """The context of a photo; `features` + `letterbox` come from the saliency pass."""
        faces = np.asarray(faces, np.float64).reshape(-1, 5)
        if features is None or letterbox is None:
            return cls(width, height, index, faces)
        stride = letterbox.canvas / features.shape[0]  # canvas px per cell
        lb = letterbox
        content = (lb.x / stride, lb.y / stride, (lb.x + lb.w) / stride, (lb.y + lb.h) / stride)
        cells = (lb.w / stride / width, lb.h / stride / height)
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


class Ranker(Protocol):
    """Scores windows of one ratio (higher is better); `scope`: what it may re-order."""

    name: str
    scope: str

    def score(
        self, photo: PhotoContext, windows: Windows, measured: WindowFeatures, options: CropOptions
    ) -> np.ndarray: ...


class CompositionRanker:
    """The model-free ranker: the composition score of `scoring.py`, never re-ranked."""

    name = COMPOSITION_NAME
    scope = DEFAULT_SCOPE  # unused: `rank_candidates` never re-orders the composition order

    def score(
        self, photo: PhotoContext, windows: Windows, measured: WindowFeatures, options: CropOptions
    ) -> np.ndarray:
        return composition_score(measured, options)


def order_by(score: np.ndarray, feasible: np.ndarray | None = None, limit: int | None = None) -> np.ndarray:
    """Indices of the `feasible` windows (all without a mask), best `score` first; with
    `limit`, only the best `limit` of them. Stable: among equal scores the earlier (larger,
    then top-left) window wins."""
    index = np.arange(len(score)) if feasible is None else np.flatnonzero(feasible)
    if limit is not None and limit < len(index):
        # Partial selection: only the best `limit` need sorting.
        index = np.sort(index[np.argpartition(-score[index], limit - 1)[:limit]])
    return index[np.argsort(-score[index], kind="stable")]


T = TypeVar("T", Windows, WindowFeatures)


def take(values: T, index: np.ndarray) -> T:
    """The windows `index` of a Windows / WindowFeatures: the rows of every per-window array.
    A subset is no longer a grid (no `grids`); the face rule's `protected` faces stay."""
    rows: dict[str, Any] = {
        f.name: () if f.name == "grids" else getattr(values, f.name)[index]
        for f in fields(values)
        if f.name != "protected"
    }
    return replace(values, **rows)


@dataclass(frozen=True, eq=False)
class Ranking:
    """Feasible windows best first, each window's score and score terms, and who chose."""

    order: np.ndarray
    score: np.ndarray  # per window
    terms: dict[str, np.ndarray]  # per window, weighted; they add up to `score`
    chosen_by: str


def face_safe(order: np.ndarray, measured: WindowFeatures) -> np.ndarray:
    """The windows of `order` that slice detected heads no more than its first.

    The face rule is the engine's, not the model's: where the rule had to be relaxed, the
    learned ranker may not trade a sliced head for anything else.
    """
    if len(order) == 0:
        return order
    cut = measured.head_cut[order]
    return order[cut <= cut[0] + 1e-9]


def of_first_size(order: np.ndarray, w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The windows of `order` of its first one's size: what a ranker of scope "position" re-orders."""
    return order[(w[order] == w[order[0]]) & (h[order] == h[order[0]])]


def break_face_ties(order: np.ndarray, score: np.ndarray, windows: Windows, measured: WindowFeatures,
                    options: CropOptions) -> np.ndarray:  # fmt: skip
    """`order` with its first window replaced when windows scoring within `face_score_tie` of
    it keep other, equally important faces: then the faces nearer the photo's centre are
    kept (the window keeping them that scores best), and on a tie the left-most, top-most.

    Why: a score difference that small between two such windows comes from the saliency
    around equally important faces (or from rounding), and an argmax over it keeps one
    person and drops the other every time (docs/fairness.md). Which of equal faces stays is
    then decided by where they are, a rule blind to what the faces look like.
    """
    faces = measured.protected
    if options.face_score_tie <= 0 or len(faces) < 2 or len(order) < 2:
        return order
    # Over every feasible window (`order` may hold only the best few, all keeping one face).
    near = np.flatnonzero(measured.feasible & (score >= score[order[0]] - options.face_score_tie))
    if len(near) > NEAR_TIES:
        near = near[np.argpartition(-score[near], NEAR_TIES - 1)[:NEAR_TIES]]
    near = near[np.argsort(-score[near], kind="stable")]
    if len(near) < 2:
        return order
    kept = contains(take(windows, near), faces)
    importance = face_importance(faces, options.face_importance_tie)
    held = kept @ importance
    same = np.abs(held - held[0]) <= 1e-9 * max(float(held[0]), 1e-12)
    sets, first = np.unique(kept[same], axis=0, return_index=True)
    if len(sets) < 2:
        return order
    centres = np.stack([faces[:, 0] + faces[:, 2] / 2, faces[:, 1] + faces[:, 3] / 2], axis=1)
    diagonal = float(np.hypot(windows.x1.max(), windows.y1.max()))
    keys = []
    for members in sets:
        cx, cy = centres[members].mean(axis=0)
        # Distance to the centre in 1% steps of the diagonal: equal faces placed alike tie.
        off = round(100 * float(np.hypot(cx - windows.x1.max() / 2, cy - windows.y1.max() / 2)) / diagonal)
        keys.append((off, round(float(cx)), round(float(cy))))
    chosen = near[same][first[min(range(len(sets)), key=keys.__getitem__)]]
    if chosen == order[0]:
        return order
    return np.concatenate([[chosen], order[order != chosen]])


def rank_candidates(
    ranker: Ranker,
    photo: PhotoContext,
    windows: Windows,
    measured: WindowFeatures,
    options: CropOptions,
    shortlist: int | None = None,
    limit: int | None = None,
) -> Ranking:
    """Rank one ratio's windows: the composition order, then `ranker` re-orders its head.

    A learned ranker re-orders the face-safe part of the best `shortlist` windows
    (`options.ranker_shortlist` by default; scope "position": only those of the first
    one's size); the rest follow in composition order. Without a feature map (the saliency
    stage fell back) the composition order stands and says so. With `limit`, only the best
    max(`limit`, `shortlist`) windows are ordered.
    """
    shortlist = options.ranker_shortlist if shortlist is None else shortlist
    terms = composition_terms(measured, options)
    composition = total_score(terms)
    learned_runs = not isinstance(ranker, CompositionRanker) and photo.has_features
    keep = None if limit is None else max(limit, shortlist if learned_runs else 0)
    order = break_face_ties(order_by(composition, measured.feasible, keep), composition, windows, measured, options)
    if not learned_runs or len(order) == 0:
        return Ranking(order, composition, terms, COMPOSITION_NAME)
    short = face_safe(order[:shortlist], measured)
    if ranker.scope == "position":
        short = of_first_size(short, windows.w, windows.h)
    learned = ranker.score(photo, take(windows, short), take(measured, short), options)
    # Windows outside the shortlist keep their composition score (no correction).
    score = composition.astype(np.float64).copy()
    score[short] = learned
    reordered = np.concatenate([short[order_by(learned)], order[~np.isin(order, short)]])
    return Ranking(reordered, score, {**terms, "learned": score - composition}, ranker.name)


def card_beats_composition(card: object) -> bool:
    """A ranker card's verdict, `validation.beats_composition` (written by model_export.ranker)."""
    return isinstance(card, dict) and bool(card.get("validation", {}).get("beats_composition", False))


__all__ = [
    "DEFAULT_RANKER_MODEL",
    "DEFAULT_SCOPE",
    "CompositionRanker",
    "PhotoContext",
    "Ranker",
    "Ranking",
    "break_face_ties",
    "card_beats_composition",
    "face_safe",
    "of_first_size",
    "order_by",
    "rank_candidates",
    "take",
]
