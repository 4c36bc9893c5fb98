"""Train the crop ranker from pairwise human preferences, on CPU in minutes.

    python -m training.ranker --out runs/ranker [--data ../shared/data] [--epochs 4]
        [--loss logistic|hinge] [--fcdb-images DIR] [--gaicd-images DIR]

Read top to bottom:

1. Photos: the train split of OSIE and EyeCrowd. The validation split (every 10th image)
   is never used for training or for choosing anything; a dev split carved out of the
   train split (every 10th train image, offset 5) picks the epoch.
2. Every photo goes through the engine's own stages: decode, the saliency pass with its
   features, faces, candidate windows per ratio, hard rules, the composition score's
   shortlist. Training photos are also used mirrored (a mirrored photo is as good a photo).
3. Preferences, all from real human data:
   - attention: of two windows of the same ratio and size, the one holding more human
     fixations (by a margin) is preferred;
   - faces (EyeCrowd's labelled faces): a window keeping every labelled face whole beats
     one slicing a face;
   - composition (the View Finding Network's self-supervision): the photographer's full
     frame beats a randomly shifted and zoomed sub-window of it;
   - optionally, FCDB's voted pairs and GAICD's scored crops for users who have the photos.
4. The head (`build_models`): pooled features are scaled per channel and reduced to a few
   channels by a linear 1x1 layer (as GAIC reduces before RoIAlign; linear, so it runs on
   the feature map before pooling at inference), concatenated with the standardised
   window statistics, then one hidden layer. Trained on score differences with the
   logistic loss (RankNet) or RankSVM's hinge.
5. Checked on dev (each epoch) and validation (at the end): the window the ranker picks
   from the shortlist against the composition score's pick, by EVALUATION.md's of_oracle,
   face_cut_rate and area.

Hyper-parameters live in `RankerConfig`, saved as config.json beside the weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autocrop.candidates import SaliencyIndex, Windows, largest_window, measure_windows, propose_windows
from autocrop.engine import decode_for, faces_to_full, saliency_pass
from autocrop.faces import detect_faces, load_face_detector
from autocrop.options import CropOptions, parse_ratio
from autocrop.ranker import GRID, REGIONS, STAT_NAMES, PhotoContext, face_safe, pool_regions, take, window_stats
from autocrop.saliency import load_saliency
from autocrop.scoring import composition_terms, total_score

from .crop_datasets import PreferenceSet
from .crop_labels import box_counts, cuts_faces, face_rects, oracle_counts, point_integral
from .datasets import DEFAULT_DATA_ROOT, FaceLabel, FixationRecord, load_eyecrowd_faces, load_saliency_sets

log = logging.getLogger("training.ranker")

RATIOS = ("1:1", "16:9", "4:5", "9:16")
#: Row kinds.
CANDIDATE, EXTRA = 0, 1
#: Pair kinds, in the order their counts are reported.
PAIR_KINDS = ("attention", "faces", "composition", "crops")


@dataclass(frozen=True)
class RankerConfig:
    """Everything that decides a training run; saved as config.json beside the weights."""

    # --- the head
    reduced_channels: int = 16  # 1x1 reduction of the backbone features (GAIC used 8)
    hidden: int = 64
    dropout: float = 0.3
    feature_dropout: float = 0.0  # on the pooled, reduced backbone features
    l2: float = 1e-4
    # --- training
    loss: str = "logistic"  # "logistic" (RankNet) or "hinge" (RankSVM)
    temperature: float = 30.0  # initial scale of score differences in the loss (learned)
    correction_l2: float = 1e-3  # pulls the learned correction towards 0 (= the composition score)
    epochs: int = 4
    batch_pairs: int = 512
    learning_rate: float = 2e-3
    seed: int = 0
    flip: bool = True  # mirrored training photos
    # --- what the ranker decides (saved in the model card; autocrop.ranker.rank_candidates)
    scope: str = "position"  # "position": where the composition score's chosen size sits;
    #                          "shortlist": any window of the composition score's shortlist
    # --- candidates kept per (photo, ratio)
    shortlist: int = 200  # what the engine re-ranks (and what dev/val choose from)
    train_top: int = 16  # the composition score's best ones, always kept
    train_shortlist: int = 24  # random others from the shortlist
    train_outside: int = 8  # random windows from outside the shortlist
    # --- preferences
    attention_margin: float = 0.04  # fixation-count gap, as a share of the photo's fixations
    attention_min_gap: int = 2  # ... and at least this many fixations
    attention_pairs: int = 96  # per (photo, ratio), at most
    face_pairs: int = 32  # per (photo, ratio), at most
    face_weight: float = 0.3  # chosen on dev (0.3 / 1.0)
    composition_pairs: int = 4  # full frame vs sub-window, per photo
    zoom_pairs: int = 32  # window vs a smaller window inside it, per (photo, ratio)
    composition_weight: float = 0.1  # chosen on dev (0.1 / 0.3)
    composition_scale: tuple[float, float] = (0.5, 0.9)  # side of the zoomed sub-window
    crop_weight: float = 1.0  # FCDB / GAICD pairs, when their photos are given
    max_images: int | None = None  # per set, for smoke tests
    # --- what the head sees: pooled backbone features (RoI/RoD) and/or window statistics
    use_features: bool = True  # False: the reduction is frozen at 0, statistics only


# --- human labels of a window --------------------------------------------------------------


def flip_record(record: FixationRecord) -> FixationRecord:
    """The record of the mirrored photo (pixel i -> width - 1 - i)."""
    fix = np.array(record.fixations, np.float32)
    fix[:, 0] = record.width - 1 - fix[:, 0]
    return dataclasses.replace(record, fixations=fix)


def flip_faces(faces: Sequence[FaceLabel], width: int) -> list[FaceLabel]:
    return [dataclasses.replace(f, x=width - f.x - f.w) for f in faces]


# --- the engine's stages on one photo ----------------------------------------------------------


@dataclass(eq=False)
class Stages:
    """The shared models and options (loaded once).

    Cross-fitting: with `fold_models` (model k trained without the training photos of fold
    k, `training.saliency --folds N --fold k`) and `folds` ((dataset, name) -> fold), a
    training photo is seen through the saliency model that never saw it, so its maps are as
    wrong as they will be on new photos, and the ranker learns to correct the model's real
    mistakes, not the memorised maps of its own training photos. Other photos (validation)
    go through the shipped model, as at run time.
    """

    options: CropOptions = field(default_factory=CropOptions)
    fold_models: tuple[Any, ...] = ()
    folds: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.saliency = load_saliency()
        self.detector = load_face_detector()
        for model in (self.saliency, *self.fold_models):
            if not hasattr(model, "predict_with_features"):
                raise RuntimeError(f"the saliency model {model.name} gives no features")

    def saliency_for(self, record: FixationRecord | None) -> Any:
        """The model that never saw `record` in training (the shipped one for non-training photos)."""
        if record is None or not self.fold_models:
            return self.saliency
        fold = self.folds.get((record.dataset, record.name))
        return self.saliency if fold is None else self.fold_models[fold]

    def photo(self, data: bytes, flip: bool = False, record: FixationRecord | None = None) -> PhotoContext:
        """The engine's own stages (decode, saliency pass with features, faces) -> photo context."""
        o = self.options
        decoded = decode_for(data, o)
        if flip:
            decoded = dataclasses.replace(decoded, rgb=np.ascontiguousarray(decoded.rgb[:, ::-1]))
        model = self.saliency_for(record)
        out = saliency_pass(decoded.rgb, model)
        if out.features is None:
            raise RuntimeError(f"saliency model {model.name} returned no features")
        faces = faces_to_full(detect_faces(decoded.rgb, self.detector, o), decoded).reshape(-1, 5)
        index = SaliencyIndex.build(out.saliency, decoded.width, decoded.height)
        return PhotoContext.build(decoded.width, decoded.height, index, faces, out.features, out.letterbox)


def composition_score(measured: Any, options: CropOptions) -> np.ndarray:
    """The composition score of every window (the learned ranker's offset)."""
    return total_score(composition_terms(measured, options)).astype(np.float32)


def composition_order(measured: Any, options: CropOptions) -> np.ndarray:
    """Feasible windows best first by the composition score (the engine's order)."""
    score = composition_score(measured, options)
    feasible = np.flatnonzero(measured.feasible)
    return feasible[np.argsort(-score[feasible], kind="stable")]


def windows_from_boxes(boxes: np.ndarray, width: int, height: int) -> Windows:
    """Windows for arbitrary (x, y, w, h) boxes, clipped to the photo; scale vs their ratio's largest."""
    b = np.rint(np.asarray(boxes, np.float64)).astype(np.int64).reshape(-1, 4)
    x = np.clip(b[:, 0], 0, width - 1)
    y = np.clip(b[:, 1], 0, height - 1)
    w = np.clip(b[:, 2], 1, width - x)
    h = np.clip(b[:, 3], 1, height - y)
    scale = np.array([wi / largest_window(width, height, wi / hi)[0] for wi, hi in zip(w, h)])
    return Windows(x, y, w, h, scale.astype(np.float64))


# --- rows and pairs ------------------------------------------------------------------------------


@dataclass
class Table:
    """Candidate rows (descriptors + labels) and preference pairs, grown photo by photo."""

    regions: list[np.ndarray] = field(default_factory=list)  # (n, REGIONS, C) float16
    stats: list[np.ndarray] = field(default_factory=list)  # (n, G) float32
    columns: dict[str, list[np.ndarray]] = field(default_factory=dict)
    pairs: list[np.ndarray] = field(default_factory=list)  # (m, 2) global row indices
    weights: list[np.ndarray] = field(default_factory=list)
    pair_kinds: list[np.ndarray] = field(default_factory=list)
    rows: int = 0
    groups: int = 0

    def add_rows(self, regions: np.ndarray, stats: np.ndarray, **columns: np.ndarray) -> int:
        """Append rows; returns the index of the first one."""
        start = self.rows
        self.regions.append(regions.astype(np.float16))
        self.stats.append(stats.astype(np.float32))
        n = len(stats)
        for k, v in columns.items():
            self.columns.setdefault(k, []).append(np.broadcast_to(np.asarray(v), (n,)).copy())
        self.rows += n
        return start

    def add_pairs(self, pairs: np.ndarray, weights: np.ndarray, kind: str) -> None:
        if len(pairs) == 0:
            return
        self.pairs.append(np.asarray(pairs, np.int64).reshape(-1, 2))
        self.weights.append(np.broadcast_to(np.asarray(weights, np.float32), (len(pairs),)).copy())
        self.pair_kinds.append(np.full(len(pairs), PAIR_KINDS.index(kind), np.int8))

    def freeze(self) -> dict[str, np.ndarray]:
        out = {
            "regions": np.concatenate(self.regions) if self.regions else np.zeros((0, REGIONS, 0), np.float16),
            "stats": np.concatenate(self.stats) if self.stats else np.zeros((0, len(STAT_NAMES)), np.float32),
            "pairs": np.concatenate(self.pairs) if self.pairs else np.zeros((0, 2), np.int64),
            "weights": np.concatenate(self.weights) if self.weights else np.zeros(0, np.float32),
            "pair_kinds": np.concatenate(self.pair_kinds) if self.pair_kinds else np.zeros(0, np.int8),
        }
        for k, v in self.columns.items():
            out[k] = np.concatenate(v)
        return out


def attention_pairs(
    rows: np.ndarray, counts: np.ndarray, sizes: np.ndarray, total: int, cfg: RankerConfig, rng: np.random.Generator
) -> np.ndarray:
    """(better, worse) row pairs of equal size whose fixation counts differ by the margin."""
    gap = max(cfg.attention_min_gap, cfg.attention_margin * total)
    out = []
    for size in np.unique(sizes):
        idx = np.flatnonzero(sizes == size)
        if len(idx) < 2:
            continue
        diff = counts[idx][:, None] - counts[idx][None, :]
        a, b = np.nonzero(diff >= gap)
        out.append(np.stack([rows[idx[a]], rows[idx[b]]], axis=1))
    pairs = np.concatenate(out) if out else np.zeros((0, 2), np.int64)
    if len(pairs) > cfg.attention_pairs:
        pairs = pairs[rng.choice(len(pairs), cfg.attention_pairs, replace=False)]
    return pairs


def face_pairs(rows: np.ndarray, cut: np.ndarray, cfg: RankerConfig, rng: np.random.Generator) -> np.ndarray:
    """(whole, sliced) row pairs: a window keeping every labelled face whole beats one slicing one."""
    good, bad = rows[~cut], rows[cut]
    if len(good) == 0 or len(bad) == 0:
        return np.zeros((0, 2), np.int64)
    n = min(cfg.face_pairs, len(good) * len(bad))
    return np.stack([rng.choice(good, n), rng.choice(bad, n)], axis=1)


def zoom_pairs(data: dict[str, np.ndarray], cfg: RankerConfig, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """VFN's preference among one ratio's candidates: a window beats a zoomed sub-window of it.

    For each (photo, ratio) group of training rows, pairs (A, B) where B lies inside A and is
    smaller, at most `zoom_pairs` of them. Made from the row table's geometry alone.
    """
    rng = np.random.default_rng(seed)
    cand = np.flatnonzero(data["kind"] == CANDIDATE)
    groups = data["group"][cand]
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    out = []
    for lo, hi in zip(starts, np.r_[starts[1:], len(cand)]):
        rows = cand[lo:hi]
        x, y, w, h = (data[k][rows][:, None] for k in ("x", "y", "w", "h"))
        inside = (
            (x.T >= x) & (y.T >= y) & (x.T + w.T <= x + w) & (y.T + h.T <= y + h) & (w.T * h.T < w * h)
        )  # [a, b]: b inside a and smaller
        a, b = np.nonzero(inside)
        if len(a) > cfg.zoom_pairs:
            pick = rng.choice(len(a), cfg.zoom_pairs, replace=False)
            a, b = a[pick], b[pick]
        out.append(np.stack([rows[a], rows[b]], axis=1))
    pairs = np.concatenate(out) if out else np.zeros((0, 2), np.int64)
    return pairs, np.ones(len(pairs), np.float32)


def add_photo(
    table: Table,
    stages: Stages,
    record: FixationRecord,
    faces: Sequence[FaceLabel] | None,
    cfg: RankerConfig,
    rng: np.random.Generator,
    train: bool,
    flip: bool = False,
    ratios: Sequence[str] = RATIOS,
) -> None:
    """One photo (mirrored or not): candidate rows per ratio, labels and, for training, pairs."""
    options = stages.options
    photo = stages.photo(record.image_path.read_bytes(), flip, record)
    if (photo.width, photo.height) != (record.width, record.height):
        raise ValueError(f"{record.name}: decoded {photo.width}x{photo.height}, labels are for {record.width}x{record.height}")
    if flip:
        record = flip_record(record)
        faces = flip_faces(faces, record.width) if faces is not None else None
    integral = point_integral(record.fixations, record.width, record.height)
    total = int(integral[-1, -1])
    countable = face_rects(faces, record.width, record.height, countable=True) if faces is not None else None
    trainable = face_rects(faces, record.width, record.height, countable=False) if faces is not None else None
    photo_id = table.groups
    for label, ratio in zip(ratios, (parse_ratio(r) for r in ratios)):
        windows = propose_windows(photo.width, photo.height, ratio, options)
        measured = measure_windows(windows, photo.index, photo.faces, photo.width, photo.height, options)
        composition = composition_score(measured, options)
        order = composition_order(measured, options)
        # What the engine lets the ranker choose from (see autocrop.ranker.rank_candidates).
        shortlist = face_safe(order[: cfg.shortlist], measured)
        if train:
            rest = shortlist[cfg.train_top :]
            others = np.setdiff1d(np.arange(len(windows)), shortlist)
            pick = np.concatenate([
                shortlist[: cfg.train_top],
                rng.choice(rest, min(cfg.train_shortlist, len(rest)), replace=False),
                rng.choice(others, min(cfg.train_outside, len(others)), replace=False),
            ])  # fmt: skip
        else:
            pick = shortlist
        w, m = take(windows, pick), take(measured, pick)
        boxes = np.stack([w.x, w.y, w.w, w.h], axis=1)
        counts = box_counts(integral, boxes)
        # Place in the composition shortlist (-1: outside it).
        position = {int(v): i for i, v in enumerate(shortlist)}
        rank = np.array([position.get(int(p), -1) for p in pick])
        start = table.add_rows(
            pool_regions(photo, boxes),
            window_stats(photo, w, m, options),
            group=table.groups,
            photo=photo_id,
            ratio=RATIOS.index(label) if label in RATIOS else -1,
            kind=CANDIDATE,
            rank=rank,
            flipped=flip,
            dataset=record.dataset,
            name=record.name,
            x=w.x, y=w.y, w=w.w, h=w.h,
            counts=counts,
            oracle=oracle_counts(integral, boxes),
            total=total,
            face_cut=cuts_faces(boxes, countable) if countable is not None else np.zeros(len(pick), bool),
            has_countable=countable is not None and len(countable) > 0,
            train_cut=cuts_faces(boxes, trainable) if trainable is not None else np.zeros(len(pick), bool),
            area=w.w * w.h / float(photo.width * photo.height),
            composition=composition[pick],
        )  # fmt: skip
        table.groups += 1
        if not train:
            continue
        rows = start + np.arange(len(pick))
        table.add_pairs(attention_pairs(rows, counts, w.w * 100_000 + w.h, total, cfg, rng), 1.0, "attention")
        if trainable is not None and len(trainable):
            cut = cuts_faces(boxes, trainable)
            table.add_pairs(face_pairs(rows, cut, cfg, rng), 1.0, "faces")
    if train and cfg.composition_pairs > 0:
        add_composition(table, photo, options, cfg, rng, photo_id, flip, record.dataset)


def add_composition(
    table: Table,
    photo: PhotoContext,
    options: CropOptions,
    cfg: RankerConfig,
    rng: np.random.Generator,
    photo_id: int,
    flip: bool,
    dataset: str,
) -> None:
    """VFN's pairs: the full frame beats shifted and zoomed sub-windows of the photo's aspect."""
    W, H = photo.width, photo.height
    n = cfg.composition_pairs
    s = rng.uniform(*cfg.composition_scale, size=n)
    w = np.maximum(1, np.rint(W * s)).astype(np.int64)
    h = np.maximum(1, np.rint(H * s)).astype(np.int64)
    x = np.rint(rng.uniform(0, 1, n) * (W - w)).astype(np.int64)
    y = np.rint(rng.uniform(0, 1, n) * (H - h)).astype(np.int64)
    windows = Windows(
        np.concatenate([[0], x]), np.concatenate([[0], y]), np.concatenate([[W], w]),
        np.concatenate([[H], h]), np.concatenate([[1.0], s]),
    )  # fmt: skip
    measured = measure_windows(windows, photo.index, photo.faces, W, H, options)
    boxes = np.stack([windows.x, windows.y, windows.w, windows.h], axis=1)
    start = table.add_rows(
        pool_regions(photo, boxes), window_stats(photo, windows, measured, options),
        group=table.groups, photo=photo_id, ratio=-1, kind=EXTRA, rank=-1, flipped=flip, dataset=dataset, name="",
        x=windows.x, y=windows.y, w=windows.w, h=windows.h, counts=0, oracle=0, total=0,
        face_cut=False, has_countable=False, train_cut=False, area=windows.w * windows.h / float(W * H),
        composition=composition_score(measured, options),
    )  # fmt: skip
    table.groups += 1
    pairs = np.stack([np.full(n, start), start + 1 + np.arange(n)], axis=1)
    table.add_pairs(pairs, 1.0, "composition")


def add_preference_set(table: Table, stages: Stages, prefs: PreferenceSet, cfg: RankerConfig) -> None:
    """FCDB / GAICD pairs on a photo the user has: their boxes as rows, their pairs as they are."""
    options = stages.options
    photo = stages.photo(prefs.image_path.read_bytes()) if prefs.image_path else None
    if photo is None:
        raise FileNotFoundError(f"{prefs.source} {prefs.name}: no image")
    windows = windows_from_boxes(prefs.boxes, photo.width, photo.height)
    measured = measure_windows(windows, photo.index, photo.faces, photo.width, photo.height, options)
    boxes = np.stack([windows.x, windows.y, windows.w, windows.h], axis=1)
    start = table.add_rows(
        pool_regions(photo, boxes), window_stats(photo, windows, measured, options),
        group=table.groups, photo=table.groups, ratio=-1, kind=EXTRA, rank=-1, flipped=False,
        dataset=prefs.source, name=prefs.name, x=windows.x, y=windows.y, w=windows.w, h=windows.h, counts=0, oracle=0,
        total=0, face_cut=False, has_countable=False, train_cut=False,
        area=windows.w * windows.h / float(photo.width * photo.height),
        composition=composition_score(measured, options),
    )  # fmt: skip
    table.groups += 1
    table.add_pairs(start + prefs.pairs, prefs.weights, "crops")


# --- the model --------------------------------------------------------------------------------


def build_models(cfg: RankerConfig, channels: int, channel_std: np.ndarray, stat_mean: np.ndarray, stat_std: np.ndarray):
    """(scorer, reducer, head, pairwise): Keras models sharing one set of layers.

    The scorer gives the learned correction f; a window's score is composition + f.

    - scorer: pooled regions (N, REGIONS, C) + stats (N, G) -> f (N, 1)        [training]
    - reducer: feature cells (K, C) -> (K, P)                                 [export: runs before pooling]
    - head: descriptor (N, REGIONS * P + G) -> f (N, 1)                       [export: runs after pooling]
    - pairwise: (regions, stats, composition) of a and b ->
      t * ((composition_a + f_a) - (composition_b + f_b)), t a learned temperature [training]
    Backend-neutral Keras 3: keras.layers and keras.ops only.
    """
    import keras
    from keras import layers, ops

    keras.utils.set_random_seed(cfg.seed)
    g = len(STAT_NAMES)
    p = cfg.reduced_channels
    # Linear (no bias, no mean shift), so reducing the map and then pooling equals pooling
    # and then reducing, and an empty border stays exactly zero.
    scale = layers.Normalization(axis=-1, mean=np.zeros(channels), variance=np.square(channel_std), name="feature_scale")
    # Statistics only: the reduction is frozen at zero, so the pooled features add nothing
    # (the exported model keeps its two signatures).
    reduce = layers.Dense(
        p, use_bias=False, name="reduce", trainable=cfg.use_features,
        kernel_initializer="glorot_uniform" if cfg.use_features else "zeros",
    )
    stat_norm = layers.Normalization(axis=-1, mean=stat_mean, variance=np.square(stat_std), name="stat_norm")
    reg = keras.regularizers.L2(cfg.l2)
    feat_drop = layers.Dropout(cfg.feature_dropout, name="feature_dropout")
    hidden = layers.Dense(cfg.hidden, activation="relu", kernel_regularizer=reg, name="hidden")
    drop = layers.Dropout(cfg.dropout, name="dropout")
    # Starts at f = 0: the untrained ranker is the composition score.
    out = layers.Dense(1, kernel_regularizer=reg, kernel_initializer="zeros", name="score")

    def head_fn(reduced_flat, stats):
        x = layers.Concatenate(name="concat")([feat_drop(reduced_flat), stat_norm(stats)])
        return out(drop(hidden(x)))

    regions_in = keras.Input((REGIONS, channels), name="regions")
    stats_in = keras.Input((g,), name="stats")
    reduced = layers.Flatten(name="flatten")(reduce(scale(regions_in)))
    scorer = keras.Model([regions_in, stats_in], head_fn(reduced, stats_in), name="ranker_scorer")

    cells_in = keras.Input((channels,), name="features")
    reducer = keras.Model(cells_in, reduce(scale(cells_in)), name="ranker_reduce")

    desc_in = keras.Input((REGIONS * p + g,), name="descriptor")
    head = keras.Model(desc_in, head_fn(desc_in[:, : REGIONS * p], desc_in[:, REGIONS * p :]), name="ranker_head")

    class PairLogit(layers.Layer):
        """t * ((c_a + f_a) - (c_b + f_b)), with t = exp(log_t) learned; f shrunk towards 0."""

        def build(self, input_shape):
            self.log_t = self.add_weight(
                shape=(), initializer=keras.initializers.Constant(math.log(cfg.temperature)), name="log_t"
            )

        def call(self, inputs):
            ca, fa, cb, fb = inputs
            self.add_loss(cfg.correction_l2 * ops.mean(ops.square(fa) + ops.square(fb)))
            return ops.exp(self.log_t) * ((ca + fa) - (cb + fb))

    ra, sa = keras.Input((REGIONS, channels), name="regions_a"), keras.Input((g,), name="stats_a")
    rb, sb = keras.Input((REGIONS, channels), name="regions_b"), keras.Input((g,), name="stats_b")
    ca, cb = keras.Input((1,), name="composition_a"), keras.Input((1,), name="composition_b")
    logit = PairLogit(name="pair_logit")([ca, scorer([ra, sa]), cb, scorer([rb, sb])])
    pairwise = keras.Model([ra, sa, ca, rb, sb, cb], logit, name="ranker_pairwise")
    return scorer, reducer, head, pairwise


def pair_loss(kind: str):
    """Loss on score differences (better - worse): logistic (RankNet) or hinge (RankSVM)."""
    from keras import ops

    if kind == "logistic":
        return lambda y_true, d: ops.softplus(-d)
    if kind == "hinge":
        return lambda y_true, d: ops.relu(1.0 - d)
    raise ValueError(f"loss must be 'logistic' or 'hinge', got {kind!r}")


def make_pair_batches(data: dict[str, np.ndarray], cfg: RankerConfig):
    """A keras PyDataset of shuffled pair batches gathered from the row table."""
    import keras

    class PairBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(cfg.seed)
            self.order = self.rng.permutation(len(data["pairs"]))
            self.comp = data["composition"].astype(np.float32)[:, None]

        def __len__(self) -> int:
            return math.ceil(len(self.order) / cfg.batch_pairs)

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(len(data["pairs"]))

        def __getitem__(self, i: int):
            sel = self.order[i * cfg.batch_pairs : (i + 1) * cfg.batch_pairs]
            a, b = data["pairs"][sel, 0], data["pairs"][sel, 1]
            comp = self.comp
            x = (
                data["regions"][a].astype(np.float32), data["stats"][a], comp[a],
                data["regions"][b].astype(np.float32), data["stats"][b], comp[b],
            )  # fmt: skip
            return x, np.zeros((len(sel), 1), np.float32), data["weights"][sel]

    return PairBatches()


# --- choosing and checking ----------------------------------------------------------------------


def choose(data: dict[str, np.ndarray], scores: np.ndarray | None, scope: str = "position") -> np.ndarray:
    """The chosen row of each (photo, ratio) group: best `scores`, or the composition's first.

    With `scope` "position" the scores only choose among windows of the size the
    composition score chose (as the engine does with such a model).
    """
    cand = np.flatnonzero((data["kind"] == CANDIDATE) & (data["rank"] >= 0))
    groups = data["group"][cand]
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    chosen = []
    for lo, hi in zip(starts, np.r_[starts[1:], len(cand)]):
        rows = cand[lo:hi]
        first = rows[np.argmin(data["rank"][rows])]
        if scores is None:
            chosen.append(first)
            continue
        if scope == "position":
            rows = rows[(data["w"][rows] == data["w"][first]) & (data["h"][rows] == data["h"][first])]
        s = scores[rows]
        # Ties: the composition's order decides (as the engine's stable sort does).
        best = np.flatnonzero(s >= s.max() - 1e-9)
        chosen.append(rows[best[np.argmin(data["rank"][rows[best]])]])
    return np.array(chosen, np.int64)


def crop_figures(data: dict[str, np.ndarray], chosen: np.ndarray) -> dict[str, Any]:
    """EVALUATION.md's figures of the chosen rows, per ratio and mean, per data set and all."""
    out: dict[str, Any] = {}
    sets = sorted(set(data["dataset"][chosen].tolist())) + ["all"]
    for ds in sets:
        sel = chosen if ds == "all" else chosen[data["dataset"][chosen] == ds]
        table: dict[str, Any] = {}
        for r, name in [*enumerate(RATIOS), (None, "mean")]:
            rows = sel if r is None else sel[data["ratio"][sel] == r]
            if len(rows) == 0:
                continue
            oracle = data["oracle"][rows]
            of = np.where(oracle > 0, data["counts"][rows] / np.maximum(oracle, 1), 1.0)
            faced = rows[data["has_countable"][rows]]
            table[name] = {
                "n": int(len(rows)),
                "of_oracle": float(of.mean()),
                "retention": float((data["counts"][rows] / np.maximum(data["total"][rows], 1)).mean()),
                "area": float(data["area"][rows].mean()),
                "face_cut_rate": float(data["face_cut"][faced].mean()) if len(faced) else None,
                "face_crops": int(len(faced)),
            }
        out[ds] = table
    return out


def predict_rows(scorer, data: dict[str, np.ndarray], rows: np.ndarray | None = None, batch: int = 4096) -> np.ndarray:
    """Scores of rows (all rows when None) with the float scorer."""
    rows = np.arange(len(data["stats"])) if rows is None else rows
    out = np.full(len(data["stats"]), np.nan, np.float32)
    for i in range(0, len(rows), batch):
        r = rows[i : i + batch]
        out[r] = np.asarray(scorer([data["regions"][r].astype(np.float32), data["stats"][r]], training=False)).reshape(-1)
    return out


def compare(data: dict[str, np.ndarray], correction: np.ndarray, scope: str = "position") -> dict[str, Any]:
    """Composition vs ranker (composition + learned correction) figures on one split."""
    return {
        "composition": crop_figures(data, choose(data, None)),
        "ranker": crop_figures(data, choose(data, data["composition"] + correction, scope)),
    }


def selection_key(figures: dict[str, Any], area_slack: float = 0.01) -> tuple[float, float]:
    """Epoch choice on dev: no more face cuts and no smaller crops than composition, then of_oracle.

    A ranker that wins of_oracle by returning smaller crops (which lose retention and
    context) or by slicing more faces is not better; such epochs rank below all that aren't.
    """
    comp, rank = figures["composition"]["all"]["mean"], figures["ranker"]["all"]["mean"]
    cut_c, cut_r = comp["face_cut_rate"] or 0.0, rank["face_cut_rate"] or 0.0
    penalty = max(0.0, cut_r - cut_c) + max(0.0, comp["area"] - area_slack - rank["area"])
    return (-penalty, rank["of_oracle"])


def beats_composition(figures: dict[str, Any], area_slack: float = 0.01) -> bool:
    """The one "better than the composition score" rule (epoch choice, the model card's
    `beats_composition`, hence `ranker="auto"`): no more face cuts, no smaller crops, and a
    higher of_oracle."""
    penalty, of_oracle = selection_key(figures, area_slack)
    return penalty == 0 and of_oracle > figures["composition"]["all"]["mean"]["of_oracle"]


# --- the run -------------------------------------------------------------------------------------


def build_table(
    stages: Stages,
    records: Sequence[FixationRecord],
    faces: dict[str, list[FaceLabel]],
    cfg: RankerConfig,
    train: bool,
    prefs: Sequence[PreferenceSet] = (),
    desc: str = "photos",
) -> dict[str, np.ndarray]:
    """Rows (and pairs, for training) of every photo."""
    from tqdm import tqdm

    rng = np.random.default_rng(cfg.seed + (0 if train else 1))
    table = Table()
    for record in tqdm(records, desc=desc, unit="img", file=sys.stderr):
        labels = faces.get(record.name) if record.dataset == "eyecrowd" else None
        add_photo(table, stages, record, labels, cfg, rng, train)
        if train and cfg.flip:
            add_photo(table, stages, record, labels, cfg, rng, train, flip=True)
    for p in tqdm(prefs, desc="crop sets", unit="img", file=sys.stderr):
        add_preference_set(table, stages, p, cfg)
    return table.freeze()


def split_dev(train: Sequence[FixationRecord]) -> tuple[list[FixationRecord], list[FixationRecord]]:
    """(fit, dev): every 10th train image (index % 10 == 5, by name) is dev."""
    ordered = sorted(train, key=lambda r: r.name)
    return [r for i, r in enumerate(ordered) if i % 10 != 5], [r for i, r in enumerate(ordered) if i % 10 == 5]


def fit(cfg: RankerConfig, fit_data: dict[str, np.ndarray], dev_data: dict[str, np.ndarray], out_dir: Path):
    """Train pairwise; keep the epoch with the best dev figures; returns (models, history)."""
    import keras

    regions = fit_data["regions"]
    channels = regions.shape[2]
    flat = regions.reshape(-1, channels)
    channel_std = np.sqrt(np.mean(np.square(flat[:: max(1, len(flat) // 200_000)].astype(np.float64)), axis=0)) + 1e-6
    stat_mean = fit_data["stats"].mean(axis=0).astype(np.float64)
    stat_std = fit_data["stats"].std(axis=0).astype(np.float64) + 1e-6
    scorer, reducer, head, pairwise = build_models(cfg, channels, channel_std, stat_mean, stat_std)
    steps = math.ceil(len(fit_data["pairs"]) / cfg.batch_pairs) * cfg.epochs
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps)
    pairwise.compile(optimizer=keras.optimizers.Adam(schedule), loss=pair_loss(cfg.loss))
    batches = make_pair_batches(fit_data, cfg)
    dev_rows = np.flatnonzero(dev_data["rank"] >= 0)
    history: list[dict[str, Any]] = []
    best: tuple[tuple[float, float], int] | None = None
    weights_path = out_dir / "ranker.weights.h5"

    for epoch in range(cfg.epochs):
        t = time.perf_counter()
        h = pairwise.fit(batches, epochs=1, verbose=0)
        scores = predict_rows(scorer, dev_data, dev_rows)
        figures = compare(dev_data, scores, cfg.scope)
        key = selection_key(figures)
        r, c = figures["ranker"]["all"]["mean"], figures["composition"]["all"]["mean"]
        history.append({"epoch": epoch + 1, "loss": float(h.history["loss"][-1]), "dev": figures["ranker"]["all"]["mean"]})
        log.info(
            "epoch %d loss %.4f  dev of_oracle %.4f (composition %.4f) face_cut %.3f (%.3f) area %.3f (%.3f)  %.0fs",
            epoch + 1, h.history["loss"][-1], r["of_oracle"], c["of_oracle"], r["face_cut_rate"] or 0,
            c["face_cut_rate"] or 0, r["area"], c["area"], time.perf_counter() - t,
        )  # fmt: skip
        if best is None or key > best[0]:
            best = (key, epoch + 1)
            scorer.save_weights(weights_path)
    assert best is not None
    scorer.load_weights(weights_path)
    log.info("kept epoch %d (final temperature %.1f)", best[1], float(np.exp(np.asarray(pairwise.get_layer("pair_logit").log_t))))
    return (scorer, reducer, head), history, best[1], (channel_std, stat_mean, stat_std)


def load_trained(run_dir: Path):
    """(config, scorer, reducer, head) of a finished run."""
    meta = json.loads((Path(run_dir) / "config.json").read_text())
    cfg = config_from_dict(meta["config"])
    norm = np.load(Path(run_dir) / "normalisation.npz")
    scorer, reducer, head, _ = build_models(
        cfg, int(meta["channels"]), norm["channel_std"], norm["stat_mean"], norm["stat_std"]
    )
    scorer.load_weights(Path(run_dir) / "ranker.weights.h5")
    return cfg, scorer, reducer, head


def config_from_dict(d: dict[str, Any]) -> RankerConfig:
    known = {f.name for f in dataclasses.fields(RankerConfig)}
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
    return RankerConfig(**values)


def load_external(args: argparse.Namespace, cfg: RankerConfig) -> list[PreferenceSet]:
    """FCDB / GAICD preference sets for the photos the user has (train splits only)."""
    from .crop_datasets import fcdb_preferences, gaicd_preferences, load_fcdb_ranking, load_gaicd

    sets: list[PreferenceSet] = []
    crops = Path(args.data) / "crops"
    if args.fcdb_images:
        sets += fcdb_preferences(load_fcdb_ranking(crops / "fcdb", args.fcdb_images))
    if args.gaicd_images:
        images = [g for g in load_gaicd(crops / "gaicd", args.gaicd_images) if g.split == "train"]
        sets += gaicd_preferences(images, seed=cfg.seed)
    return sets


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/ranker"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--loss", choices=("logistic", "hinge"))
    parser.add_argument("--max-images", type=int, help="per set, for smoke tests")
    parser.add_argument("--fcdb-images", type=Path, help="folder with FCDB's ranking photos")
    parser.add_argument("--gaicd-images", type=Path, help="folder with GAICD's photos")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. --set composition_weight=0.5")
    parser.add_argument("--reuse-tables", action="store_true", help="reuse the cached row tables in --out")
    parser.add_argument("--crossfit", type=Path, nargs="+", metavar="MODEL",
                        help="cross-fitting: fold k's saliency .tflite (trained without fold k), k = 0..N-1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    overrides: dict[str, Any] = {}
    for item in args.overrides:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    if args.epochs:
        overrides["epochs"] = args.epochs
    if args.loss:
        overrides["loss"] = args.loss
    if args.max_images:
        overrides["max_images"] = args.max_images
    cfg = RankerConfig(**overrides)
    args.out.mkdir(parents=True, exist_ok=True)

    sets = load_saliency_sets(args.data, ("osie", "eyecrowd"))
    faces = load_eyecrowd_faces(Path(args.data) / "saliency" / "eyecrowd")
    train = [r for name in sets for r in sets[name][0][: cfg.max_images]]
    val = [r for name in sets for r in sets[name][1][: cfg.max_images]]
    fit_records, dev_records = split_dev(train)
    if args.crossfit:
        from autocrop.saliency import LiteRTSaliency

        from .saliency import fold_assignment

        stages = Stages(
            fold_models=tuple(LiteRTSaliency(p) for p in args.crossfit),
            folds=fold_assignment(args.data, folds=len(args.crossfit)),
        )
    else:
        stages = Stages()
    tables = {}
    for name, records, is_train in (("fit", fit_records, True), ("dev", dev_records, False), ("val", val, False)):
        path = args.out / f"table_{name}.npz"
        if args.reuse_tables and path.exists():
            tables[name] = dict(np.load(path, allow_pickle=False))
            continue
        prefs = load_external(args, cfg) if is_train else []
        tables[name] = build_table(stages, records, faces, cfg, is_train, prefs, desc=name)
        np.savez(path, **tables[name])
    fit_data = dict(tables["fit"])
    if cfg.zoom_pairs > 0:
        pairs, weights = zoom_pairs(fit_data, cfg, cfg.seed)
        fit_data["pairs"] = np.concatenate([fit_data["pairs"], pairs])
        fit_data["weights"] = np.concatenate([fit_data["weights"], weights])
        fit_data["pair_kinds"] = np.concatenate(
            [fit_data["pair_kinds"], np.full(len(pairs), PAIR_KINDS.index("composition"), np.int8)]
        )
    # Each kind of preference weighs as the config says (the tables hold unit weights).
    kind_weight = np.array([1.0, cfg.face_weight, cfg.composition_weight, cfg.crop_weight], np.float32)
    fit_data["weights"] = fit_data["weights"] * kind_weight[fit_data["pair_kinds"]]
    counts = np.bincount(fit_data["pair_kinds"], minlength=len(PAIR_KINDS))
    log.info("fit rows %d, pairs %s", len(fit_data["stats"]), dict(zip(PAIR_KINDS, counts.tolist())))

    (scorer, reducer, head), history, epoch, (channel_std, stat_mean, stat_std) = fit(
        cfg, fit_data, tables["dev"], args.out
    )
    np.savez(args.out / "normalisation.npz", channel_std=channel_std, stat_mean=stat_mean, stat_std=stat_std)
    scores = {name: predict_rows(scorer, tables[name], np.flatnonzero(tables[name]["rank"] >= 0)) for name in ("dev", "val")}
    figures = {name: compare(tables[name], scores[name], cfg.scope) for name in ("dev", "val")}
    meta = {
        "config": asdict(cfg),
        "channels": int(fit_data["regions"].shape[2]),
        "saliency_model": stages.saliency.name,
        "crossfit": [str(p) for p in args.crossfit] if args.crossfit else None,
        "stats": list(STAT_NAMES),
        "grid": GRID,
        "regions": REGIONS,
        "epoch": epoch,
        "photos": {"fit": len(fit_records), "dev": len(dev_records), "val": len(val)},
        "pairs": dict(zip(PAIR_KINDS, counts.tolist())),
        "history": history,
        "figures": figures,
    }
    (args.out / "config.json").write_text(json.dumps(meta, indent=1))
    for name in ("dev", "val"):
        for method in ("composition", "ranker"):
            m = figures[name][method]["all"]["mean"]
            print(f"{name} {method:12s} of_oracle {m['of_oracle']:.4f} face_cut {m['face_cut_rate']} area {m['area']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
