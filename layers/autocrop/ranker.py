"""The learned crop ranker: a small head over the shared backbone pass that corrects the
composition score (`ranking.rank_candidates` lets it re-order the shortlist only).

No network pass per candidate: each window's descriptor is pooled, as in GAIC, from the
stride-16 encoder map the saliency pass returns: exact means (integral image) over the
window's 3 x 3 bins (RoIAlign's layout), the discarded border (RoD) and the whole photo,
plus named statistics of geometry, saliency and faces (`STAT_NAMES`). The head is a TFLite
model (`models/ranker.tflite`, card `models/ranker.json`) with two signatures: `reduce` (per
feature cell, once per photo, before pooling) and `score` (descriptors -> corrections).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .candidates import WindowFeatures, Windows
from .face_rule import count_inside, face_importance, head_boxes, rects_of, sliced
from .options import CropOptions
from .ranking import DEFAULT_RANKER_MODEL, DEFAULT_SCOPE, CompositionRanker, PhotoContext, card_beats_composition
from .scoring import composition_score

log = logging.getLogger(__name__)
REDUCE_SIGNATURE, SCORE_SIGNATURE = "reduce", "score"  # the model's two signatures
GRID = 3  # bins per side of a window's feature grid (RoIAlign's output size)
REGIONS = GRID * GRID + 2  # per window: the GRID x GRID bins, the discarded border, the whole photo
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
    # faces: the face rule's protected ones (`face_stats`)
    "has_faces", "faces_cut_share", "faces_roomy_share",
)  # fmt: skip


def _integral_at(ii: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Integral image at fractional cells, u: (N, A), v: (N, B) -> (N, B, A, C) (bilinear: exact)."""
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
    """(N, REGIONS, C) means of (x, y, w, h) full-res boxes (`integral`: the raw map's by default)."""
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
        (rest_area > 1e-3)[:, None], (photo_sum[None, :] - window_sum) / np.maximum(rest_area, 1e-3)[:, None], 0.0
    )
    whole = np.broadcast_to(photo_sum / max(photo_area, 1e-9), (n, ii.shape[2]))
    out = np.concatenate([bins.reshape(n, GRID * GRID, -1), border[:, None], whole[:, None]], axis=1)
    return out.astype(np.float32)


def window_stats(photo: PhotoContext, windows: Windows, measured: WindowFeatures, options: CropOptions) -> np.ndarray:
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
    # Saliency over the 3 x 3 bins of each window (N, GRID, GRID; rows are y), as shares of the window's.
    steps = np.arange(GRID + 1) / GRID
    gx = x0[:, None] + w[:, None] * steps  # (N, GRID+1)
    gy = y0[:, None] + h[:, None] * steps
    sums = np.clip(photo.index.sums(gx[:, None, :-1], gy[:, :-1, None], gx[:, None, 1:], gy[:, 1:, None]), 0.0, None)
    shares = sums / np.maximum(sums.sum(axis=(1, 2), keepdims=True), 1e-12)
    centres = (np.arange(GRID) + 0.5) / GRID - 0.5  # bin centres, window units from its centre
    cdx = (shares.sum(axis=1) * centres).sum(axis=1)
    cdy = (shares.sum(axis=2) * centres).sum(axis=1)
    thirds = np.array([-1 / 6, 1 / 6])
    thirds_distance = np.sqrt(
        np.min((cdx[:, None] - thirds) ** 2, axis=1) + np.min((cdy[:, None] - thirds) ** 2, axis=1)
    )
    layout = [*shares.reshape(len(windows), -1).T, cdx, cdy, thirds_distance]
    faces = face_stats(photo, windows, measured, options)
    stats = np.stack([*geometry, *terms, *edges.T, *layout, *faces.T], axis=1)
    assert stats.shape[1] == len(STAT_NAMES)
    return stats.astype(np.float32)


def edge_bands(photo: PhotoContext, windows: Windows, options: CropOptions) -> np.ndarray:
    """(N, 3): max over edges of the mean saliency just inside, just outside, and of their minimum.

    Bands are `edge_band` x the shorter side deep (as the composition score's edge term), an
    edge on the photo's border has nothing outside; relative to the map's peak.
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
    outer = np.where(np.stack([x0 > 0, x1 < W, y0 > 0, y1 < H], axis=1), outer, 0.0)  # border edges: nothing outside
    peak = max(photo.index.peak, 1e-9)
    return np.stack([inner.max(axis=1), outer.max(axis=1), np.minimum(inner, outer).max(axis=1)], axis=1) / peak


def face_stats(photo: PhotoContext, windows: Windows, measured: WindowFeatures, options: CropOptions) -> np.ndarray:
    """(N, 3): the photo has protected faces; importance share sliced; share kept with room (head inside).

    The faces are the face rule's own (`measured.protected`), weighed by its `face_importance`.
    """
    n = len(windows)
    f = measured.protected
    importance = face_importance(f)
    total = importance.sum()
    if total <= 0:
        return np.zeros((n, 3))
    heads = head_boxes(f, photo.width, photo.height, options)
    head_rows = np.concatenate([heads[:, :2], heads[:, 2:] - heads[:, :2], f[:, 4:]], axis=1)
    cut = (sliced(windows, rects_of(f)) * importance).sum(axis=1) / total
    return np.stack([np.ones(n), cut, count_inside(windows, head_rows, importance) / total], axis=1)


def describe_windows(
    photo: PhotoContext, windows: Windows, measured: WindowFeatures, options: CropOptions,
    integral: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """(N, REGIONS x C + len(STAT_NAMES)): pooled features, then statistics (the ranker's one preprocessing)."""
    boxes = np.stack([windows.x, windows.y, windows.w, windows.h], axis=1)
    regions = pool_regions(photo, boxes, integral)
    stats = window_stats(photo, windows, measured, options)
    return np.concatenate([regions.reshape(len(boxes), -1), stats], axis=1)


class LearnedRanker:
    """The composition score plus a learned correction over `describe_windows` (TFLite, float32).

    Trained with the composition score as a fixed offset, it keeps honouring the caller's
    weights, focal point and boosts, and moves away only where people's preferences say so.
    """

    def __init__(self, path: Path | str = DEFAULT_RANKER_MODEL, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        from .litert import litert_banner_filtered

        self.path = Path(path)
        card_path = self.path.with_suffix(".json")
        self.card: dict[str, Any] = json.loads(card_path.read_text()) if card_path.exists() else {}
        self.name = f"ranker:{self.card.get('name', self.path.stem)}"
        self.scope = str(self.card.get("scope", DEFAULT_SCOPE))  # what it decides (`ranking.rank_candidates`)
        self.beats_composition = card_beats_composition(self.card)  # on validation (`ranker="auto"`)
        expected = self.card.get("stats")
        if expected is not None and tuple(expected) != STAT_NAMES:
            raise ValueError(f"{self.path} was trained on other window statistics than this code computes")
        with litert_banner_filtered():  # allocating prints LiteRT's banner
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
        """Corrections of (N, D) descriptors."""
        with self._lock:
            return self._score(descriptor=np.ascontiguousarray(x, np.float32))["score"].reshape(-1)

    def score(
        self, photo: PhotoContext, windows: Windows, measured: WindowFeatures, options: CropOptions
    ) -> np.ndarray:
        """The composition score plus the learned correction (needs the saliency pass's features)."""
        if not photo.has_features:
            raise ValueError("the learned ranker needs the saliency model's features")
        integral = photo.feature_integral(self.reduce, key=self.name)
        correction = self.score_descriptors(describe_windows(photo, windows, measured, options, integral))
        return composition_score(measured, options) + correction


@lru_cache(maxsize=4)
def load_ranker(path: str | None = None, num_threads: int = 1) -> LearnedRanker | CompositionRanker:
    """The process-wide learned ranker, or the composition score when it cannot load."""
    try:
        return LearnedRanker(Path(path) if path else DEFAULT_RANKER_MODEL, num_threads=num_threads)
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        log.warning("ranker model unavailable (%s); using the composition score", e)
        return CompositionRanker()


__all__ = ["GRID", "REDUCE_SIGNATURE", "REGIONS", "SCORE_SIGNATURE", "STAT_NAMES", "LearnedRanker", "describe_windows",
           "edge_bands", "face_stats", "load_ranker", "pool_regions", "window_stats"]  # fmt: skip
