"""The published crop benchmarks' metrics, computed the way their papers' code computes them.

Boxes are (x, y, w, h) in stored-image pixels, as numpy arrays of shape (4,) or (N, 4).

- FCDB (Chen et al., WACV 2017): intersection over union with the annotated crop, and the
  boundary displacement error: the mean over the four edges of |edge_pred - edge_gt|,
  horizontal edges divided by the image height and vertical ones by its width.
- GAICD (Zeng et al., CVPR 2019): for each image, the predicted scores of its annotated crops
  against their mean opinion scores (MOS). SRCC is Spearman's rank correlation, averaged over
  images. Acc_K/N: the share of the K best-predicted crops whose MOS is at least the N-th best
  MOS (ties with the N-th best count as inside, as in the authors' `TestAccuracy.py`),
  averaged over images. Acc1/5, Acc4/5, Acc1/10 and Acc4/10 are reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from autocrop import geometry
from autocrop.geometry import xywh_to_xyxy
from scipy.stats import spearmanr

#: The (K, N) pairs GAICD papers report.
GAICD_ACC = ((1, 5), (4, 5), (1, 10), (4, 10))


def _xywh(box: np.ndarray | Sequence[float]) -> np.ndarray:
    b = np.asarray(box, dtype=np.float64)
    if b.shape[-1] != 4:
        raise ValueError(f"a box is (x, y, w, h), got shape {b.shape}")
    return b


def iou(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float]) -> np.ndarray:
    """Intersection over union of (x, y, w, h) boxes (broadcasts over leading axes)."""
    return geometry.iou(xywh_to_xyxy(_xywh(a)), xywh_to_xyxy(_xywh(b)))


def boundary_displacement(
    pred: np.ndarray | Sequence[float], gt: np.ndarray | Sequence[float], width: float, height: float
) -> np.ndarray:
    """Boundary displacement error: mean over the 4 edges, normalised by the image's size."""
    p, g = _xywh(pred), _xywh(gt)
    dx = np.abs(p[..., 0] - g[..., 0]) + np.abs(p[..., 0] + p[..., 2] - g[..., 0] - g[..., 2])
    dy = np.abs(p[..., 1] - g[..., 1]) + np.abs(p[..., 1] + p[..., 3] - g[..., 1] - g[..., 3])
    return (dx / float(width) + dy / float(height)) / 4.0


def whole_image(width: float, height: float) -> np.ndarray:
    """The do-nothing crop: the whole image."""
    return np.array([0.0, 0.0, float(width), float(height)])


def centred_crop(width: float, height: float, scale: float = 0.9) -> np.ndarray:
    """A crop of `scale` x each side, centred (the FCDB papers' second baseline)."""
    w, h = scale * width, scale * height
    return np.array([(width - w) / 2, (height - h) / 2, w, h])


@dataclass(frozen=True)
class FcdbScores:
    """Mean IoU and boundary displacement error over `images`."""

    iou: float
    bde: float
    images: int


def fcdb_scores(
    preds: Iterable[np.ndarray], gts: Iterable[np.ndarray], sizes: Iterable[tuple[float, float]]
) -> FcdbScores:
    """Mean IoU / BDE of predicted crops against annotated ones; `sizes` are (width, height)."""
    ious, bdes = [], []
    for p, g, (w, h) in zip(preds, gts, sizes, strict=True):
        ious.append(float(iou(p, g)))
        bdes.append(float(boundary_displacement(p, g, w, h)))
    if not ious:
        raise ValueError("no images to score")
    return FcdbScores(iou=float(np.mean(ious)), bde=float(np.mean(bdes)), images=len(ious))


def rank_correlation(pred: np.ndarray, mos: np.ndarray) -> float:
    """Spearman's rho of one image's predicted scores against its MOS.

    A constant prediction (or constant MOS) carries no ranking: it scores 0, not NaN, so
    one such image cannot poison an average.
    """
    pred, mos = np.asarray(pred, np.float64), np.asarray(mos, np.float64)
    if pred.shape != mos.shape or pred.ndim != 1:
        raise ValueError(f"pred and mos must be 1-D of one length, got {pred.shape}, {mos.shape}")
    if np.ptp(pred) == 0 or np.ptp(mos) == 0:
        return 0.0
    return float(spearmanr(pred, mos)[0])


def top_k_accuracy(pred: np.ndarray, mos: np.ndarray, k: int, n: int) -> float:
    """Acc_K/N of one image: share of the K best-predicted crops with MOS >= the N-th best MOS.

    Ties in the prediction keep the annotation order (a stable sort), like the reference code.
    """
    pred, mos = np.asarray(pred, np.float64), np.asarray(mos, np.float64)
    if len(pred) < max(k, n):
        raise ValueError(f"Acc{k}/{n} needs at least {max(k, n)} crops, got {len(pred)}")
    threshold = np.sort(mos)[::-1][n - 1]
    top = np.argsort(-pred, kind="stable")[:k]
    return float(np.mean(mos[top] >= threshold))


@dataclass(frozen=True)
class GaicdScores:
    """Mean SRCC and Acc_K/N over `images`."""

    srcc: float
    acc1_5: float
    acc4_5: float
    acc1_10: float
    acc4_10: float
    images: int

    def as_dict(self) -> dict[str, float]:
        return {
            "srcc": self.srcc,
            "acc1_5": self.acc1_5,
            "acc4_5": self.acc4_5,
            "acc1_10": self.acc1_10,
            "acc4_10": self.acc4_10,
            "images": self.images,
        }


def gaicd_scores(preds: Iterable[np.ndarray], mos: Iterable[np.ndarray]) -> GaicdScores:
    """GAICD's SRCC and Acc1/5, Acc4/5, Acc1/10, Acc4/10, averaged over images."""
    rows = []
    for p, m in zip(preds, mos, strict=True):
        rows.append([rank_correlation(p, m)] + [top_k_accuracy(p, m, k, n) for k, n in GAICD_ACC])
    if not rows:
        raise ValueError("no images to score")
    mean = np.mean(np.array(rows), axis=0)
    return GaicdScores(*(float(v) for v in mean), images=len(rows))


__all__ = [
    "GAICD_ACC",
    "FcdbScores",
    "GaicdScores",
    "boundary_displacement",
    "centred_crop",
    "fcdb_scores",
    "gaicd_scores",
    "iou",
    "rank_correlation",
    "top_k_accuracy",
    "whole_image",
]
