"""Saliency metrics exactly as EVALUATION.md defines them (numpy, float64 internally).

Conventions shared by all metrics:
- `pred` is any real-valued HxW map; the metrics are invariant to its offset and scale
  (CC, NSS, AUC-Judd) so it need not be normalised.
- `fixmap` is the boolean fixation map (`training.fixations.fixation_map`): a pixel fixated
  twice counts once, as in "put a 1 at each fixation pixel".
- A constant prediction carries no information; CC and NSS return 0.0 for it instead of
  dividing by a zero std, so one degenerate image cannot turn a data set mean into NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from autocrop.saliency import centre_bias as _autocrop_centre_bias

from .datasets import FixationRecord
from .fixations import density_map, fixation_map

#: Metrics `evaluate_maps` reports, in table order.
METRIC_NAMES = ("cc", "nss", "auc_judd")
#: Floor of the KL divergence's logs (MATLAB's eps, as the MIT benchmark uses).
KL_EPS = float(np.finfo(np.float64).eps)


def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    """Fail fast on maps of different sizes (a resize forgotten upstream)."""
    if a.shape != b.shape:
        raise ValueError(f"map shapes differ: {a.shape} vs {b.shape}")


def cc(pred: np.ndarray, density: np.ndarray) -> float:
    """Pearson correlation between the predicted map and the ground-truth density."""
    _check_same_shape(pred, density)
    p = np.asarray(pred, dtype=np.float64).ravel()
    d = np.asarray(density, dtype=np.float64).ravel()
    p = p - p.mean()
    d = d - d.mean()
    denom = np.sqrt((p * p).sum() * (d * d).sum())
    return float((p * d).sum() / denom) if denom > 0 else 0.0


def nss(pred: np.ndarray, fixmap: np.ndarray) -> float:
    """Mean of the standardised prediction (zero mean, unit population std) at fixation pixels."""
    _check_same_shape(pred, fixmap)
    p = np.asarray(pred, dtype=np.float64)
    fix = np.asarray(fixmap, dtype=bool)
    if not fix.any():
        raise ValueError("NSS needs at least one fixation pixel")
    std = p.std()
    if std == 0:
        return 0.0
    return float(((p[fix] - p.mean()) / std).mean())


def auc_judd(pred: np.ndarray, fixmap: np.ndarray) -> float:
    """AUC-Judd: fixation pixels positive, all other pixels negative, thresholds at fixations.

    Follows the MIT benchmark's AUC_Judd.m: one threshold at each predicted value found
    at a fixation pixel, true-positive rate = share of fixation pixels at or above it,
    false-positive rate = share of the non-fixated pixels at or above it, plus the (0, 0) and
    (1, 1) end points, area by the trapezoid rule. Where fixations tie on one value, the MIT
    code adds a 1e-7 random jitter to break ties; here the tied fixations share one threshold,
    which is the jitter's expected value without the noise.
    """
    _check_same_shape(pred, fixmap)
    s = np.asarray(pred, dtype=np.float64).ravel()
    fix = np.asarray(fixmap, dtype=bool).ravel()
    pos = np.sort(s[fix])
    neg = np.sort(s[~fix])
    if pos.size == 0:
        raise ValueError("AUC-Judd needs at least one fixation pixel")
    if neg.size == 0:
        raise ValueError("AUC-Judd needs at least one non-fixated pixel")
    thresholds = np.unique(pos)[::-1]
    # Counts of values >= t via the sorted arrays: size - (index of the first value >= t).
    tp = (pos.size - np.searchsorted(pos, thresholds, side="left")) / pos.size
    fp = (neg.size - np.searchsorted(neg, thresholds, side="left")) / neg.size
    tp = np.concatenate([[0.0], tp, [1.0]])
    fp = np.concatenate([[0.0], fp, [1.0]])
    # Trapezoid rule written out: np.trapezoid is numpy >= 2 only, np.trapz is deprecated there.
    return float((np.diff(fp) * (tp[1:] + tp[:-1]) / 2).sum())


def kl_div(pred: np.ndarray, density: np.ndarray) -> float:
    """KL divergence of the prediction from the density, both scaled to sum 1 (MIT benchmark)."""
    _check_same_shape(pred, density)
    p = np.clip(np.asarray(pred, dtype=np.float64), 0.0, None)
    q = np.clip(np.asarray(density, dtype=np.float64), 0.0, None)
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("KL divergence needs maps with positive mass")
    p = p / p.sum()
    q = q / q.sum()
    return float((q * np.log(KL_EPS + q / (p + KL_EPS))).sum())


def centre_bias(h: int, w: int) -> np.ndarray:
    """The centre-bias baseline map (EVALUATION.md: sigma 0.25 x width, 0.25 x height)."""
    return _autocrop_centre_bias(h, w)


def score_map(pred: np.ndarray, record: FixationRecord) -> dict[str, float]:
    """CC, NSS and AUC-Judd of one predicted map against one record's fixations."""
    if pred.shape[:2] != (record.height, record.width) or pred.ndim != 2:
        raise ValueError(
            f"{record.dataset}/{record.name}: prediction is {pred.shape}, "
            f"expected the stored image's size {(record.height, record.width)}"
        )
    fixmap = fixation_map(record.fixations, record.height, record.width)
    density = density_map(record.fixations, record.height, record.width)
    return {
        "cc": cc(pred, density),
        "nss": nss(pred, fixmap),
        "auc_judd": auc_judd(pred, fixmap),
    }


def _means(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-metric means of per-image scores, plus the image count."""
    out: dict[str, float] = {"n": len(rows)}
    for name in METRIC_NAMES:
        out[name] = float(np.mean([r[name] for r in rows])) if rows else float("nan")
    return out


def evaluate_maps(
    predict: Callable[[FixationRecord], np.ndarray],
    records: Iterable[FixationRecord],
    progress: bool = False,
    desc: str = "evaluate",
) -> dict[str, Any]:
    """Mean CC, NSS, AUC-Judd per data set and combined (mean over all images pooled).

    `predict` returns a map at the stored image's full size. The result maps each data set
    name and "combined" to {"n": images, "cc": ..., "nss": ..., "auc_judd": ...}.
    """
    records = list(records)
    iterator: Iterable[FixationRecord] = records
    if progress:
        from tqdm import tqdm  # only the CLI wants a progress bar (it writes to stderr)

        iterator = tqdm(records, desc=desc, unit="img")
    by_set: dict[str, list[dict[str, float]]] = {}
    for record in iterator:
        by_set.setdefault(record.dataset, []).append(score_map(predict(record), record))
    result: dict[str, Any] = {name: _means(rows) for name, rows in by_set.items()}
    result["combined"] = _means([row for rows in by_set.values() for row in rows])
    return result


def evaluate_centre_bias(
    records: Iterable[FixationRecord], progress: bool = False
) -> dict[str, Any]:
    """`evaluate_maps` for the centre-bias baseline."""
    return evaluate_maps(
        lambda r: centre_bias(r.height, r.width), records, progress=progress, desc="centre bias"
    )
