"""Train the crop ranker from pairwise human preferences, on CPU in minutes.

    python -m training.ranker --out runs/ranker [--data ../shared/data] [--set epochs=4] [--crossfit MODEL ...]

Photos: OSIE and EyeCrowd's train split (mirrored too; every 10th by name, offset 5, is dev
and picks the epoch; the validation split is only reported), through the engine's own
stages up to the face-safe shortlist a ranker may re-order. Preferences, from human data:
more fixations in a window of the same ratio and size; every labelled EyeCrowd face whole
over one sliced; the full frame, or a window, over a zoomed sub-window (VFN). Labels are
EVALUATION.md's (`training.crop_labels`), figures `training.crop_eval.summarise`'s. The head
learns a correction to the composition score from score differences (RankNet's logistic
loss). Hyper-parameters live in `RankerConfig`, saved in config.json beside the weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from autocrop.candidates import WindowFeatures, Windows, measure_windows, propose_windows
from autocrop.engine import decode_for, prepare_photo
from autocrop.faces import load_face_detector
from autocrop.options import CropOptions, parse_ratio
from autocrop.ranker import GRID, REGIONS, STAT_NAMES, pool_regions, window_stats
from autocrop.ranking import DEFAULT_SCOPE, PhotoContext, face_safe, of_first_size, order_by, take
from autocrop.saliency import load_saliency
from autocrop.scoring import composition_score

from .crop_eval import RATIOS, CropScore, summarise
from .crop_labels import box_counts, cuts_faces, face_rects, oracle_counts, oracle_shares, point_integral
from .datasets import (DEFAULT_DATA_ROOT, REPORT_ONLY_SETS, FaceLabel, FixationRecord, load_eyecrowd_faces,
                       load_saliency_sets)

log = logging.getLogger("training.ranker")

CANDIDATE, EXTRA = 0, 1  # row kinds
PAIR_KINDS = ("attention", "faces", "composition")


@dataclass(frozen=True)
class RankerConfig:
    """Everything that decides a training run; saved in config.json beside the weights."""

    # --- the head
    reduced_channels: int = 16  # 1x1 reduction of the backbone features (GAIC used 8)
    hidden: int = 64
    dropout: float = 0.3
    feature_dropout: float = 0.0  # on the pooled, reduced backbone features
    l2: float = 1e-4
    use_features: bool = True  # False: the reduction is frozen at 0, statistics only
    # --- training
    temperature: float = 30.0  # initial scale of score differences in the loss (learned)
    correction_l2: float = 1e-3  # pulls the learned correction towards 0 (= the composition score)
    epochs: int = 4
    batch_pairs: int = 512
    learning_rate: float = 2e-3
    seed: int = 0
    flip: bool = True  # mirrored training photos
    scope: str = DEFAULT_SCOPE  # what the ranker decides (the card's "scope", autocrop.ranking)
    # --- candidates kept per (photo, ratio)
    shortlist: int = CropOptions.ranker_shortlist  # what the engine re-ranks (and dev/val choose from)
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
    max_images: int | None = None  # per set, for smoke tests


def flip_record(record: FixationRecord) -> FixationRecord:
    """The record of the mirrored photo (pixel i -> width - 1 - i)."""
    fix = np.array(record.fixations, np.float32)
    fix[:, 0] = record.width - 1 - fix[:, 0]
    return replace(record, fixations=fix)


def flip_faces(faces: Sequence[FaceLabel], width: int) -> list[FaceLabel]:
    """The labels of the mirrored photo."""
    return [replace(f, x=width - f.x - f.w) for f in faces]


@dataclass(eq=False)
class Stages:
    """The shared models and options (loaded once).

    Cross-fitting: with `fold_models` (model k trained without fold k, `training.saliency
    --folds N --fold k`) and `folds` ((dataset, name) -> k), a training photo goes through the
    model that never saw it, so the ranker learns its real mistakes; others, the shipped one.
    """

    options: CropOptions = field(default_factory=CropOptions)
    fold_models: tuple[Any, ...] = ()
    folds: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.saliency = load_saliency()
        self.detector = load_face_detector()

    def saliency_for(self, record: FixationRecord | None) -> Any:
        """The model that never saw `record` in training (the shipped one for non-training photos)."""
        fold = self.folds.get((record.dataset, record.name)) if record is not None and self.fold_models else None
        return self.saliency if fold is None else self.fold_models[fold]

    def photo(self, data: bytes, flip: bool = False, record: FixationRecord | None = None) -> PhotoContext:
        """The engine's own per-photo stages (`autocrop.engine.prepare_photo`) on `data`."""
        decoded = decode_for(data, self.options)
        if flip:
            decoded = replace(decoded, rgb=np.ascontiguousarray(decoded.rgb[:, ::-1]))
        model = self.saliency_for(record)
        photo, _ = prepare_photo(decoded, self.options, model, self.detector)
        if not photo.has_features:
            raise RuntimeError(f"the saliency model {model.name} gives no features")
        return photo


@dataclass
class Table:
    """Candidate rows (pooled regions, statistics, labels) and preference pairs, photo by photo."""

    chunks: list[dict[str, np.ndarray]] = field(default_factory=list)
    pair_chunks: list[dict[str, np.ndarray]] = field(default_factory=list)
    rows: int = 0
    groups: int = 0

    def add_windows(self, photo: PhotoContext, windows: Windows, measured: WindowFeatures, options: CropOptions, **labels: Any) -> int:
        """Rows of one group of windows (labels default to none); returns the first row's index."""
        boxes = np.stack([windows.x, windows.y, windows.w, windows.h], axis=1)
        columns: dict[str, Any] = {
            "ratio": -1, "kind": EXTRA, "rank": -1, "flipped": False, "dataset": "", "name": "", "counts": 0,
            "oracle": 0, "total": 0, "face_cut": False, "has_countable": False, **labels, "group": self.groups,
            "x": windows.x, "y": windows.y, "w": windows.w, "h": windows.h,
            "area": windows.w * windows.h / float(photo.width * photo.height),
            "composition": composition_score(measured, options).astype(np.float32),
        }  # fmt: skip
        chunk = {k: np.broadcast_to(np.asarray(v), (len(windows),)).copy() for k, v in columns.items()}
        chunk["regions"] = pool_regions(photo, boxes).astype(np.float16)
        chunk["stats"] = window_stats(photo, windows, measured, options).astype(np.float32)
        self.chunks.append(chunk)
        start, self.rows, self.groups = self.rows, self.rows + len(windows), self.groups + 1
        return start

    def add_pairs(self, pairs: np.ndarray, kind: str) -> None:
        """(better, worse) row pairs of one kind, at unit weight (`main` weighs the kinds)."""
        if len(pairs):
            self.pair_chunks.append(pair_chunk(pairs, kind))

    def freeze(self) -> dict[str, np.ndarray]:
        """The table's columns, concatenated."""
        empty = {
            "regions": np.zeros((0, REGIONS, 0), np.float16), "stats": np.zeros((0, len(STAT_NAMES)), np.float32),
            "pairs": np.zeros((0, 2), np.int64), "weights": np.zeros(0, np.float32), "pair_kinds": np.zeros(0, np.int8),
        }  # fmt: skip
        return empty | {k: np.concatenate([c[k] for c in part]) for part in (self.chunks, self.pair_chunks) if part for k in part[0]}


def pair_chunk(pairs: np.ndarray, kind: str) -> dict[str, np.ndarray]:
    """A table's pair columns for `pairs` of one kind, at unit weight."""
    n = len(pairs)
    return {"pairs": np.asarray(pairs, np.int64).reshape(-1, 2), "weights": np.ones(n, np.float32),
            "pair_kinds": np.full(n, PAIR_KINDS.index(kind), np.int8)}  # fmt: skip


def attention_pairs(rows: np.ndarray, counts: np.ndarray, sizes: np.ndarray, total: int, cfg: RankerConfig,
                    rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """(better, worse) row pairs of equal size whose fixation counts differ by the margin."""
    gap = max(cfg.attention_min_gap, cfg.attention_margin * total)
    out = [np.zeros((0, 2), np.int64)]
    for size in np.unique(sizes):
        idx = np.flatnonzero(sizes == size)
        if len(idx) < 2:
            continue
        a, b = np.nonzero(counts[idx][:, None] - counts[idx][None, :] >= gap)
        out.append(np.stack([rows[idx[a]], rows[idx[b]]], axis=1))
    pairs = np.concatenate(out)
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


def candidate_groups(data: dict[str, np.ndarray], ranked_only: bool = False) -> list[np.ndarray]:
    """The candidate rows of each (photo, ratio) group (with `ranked_only`, the shortlist's)."""
    keep = (data["kind"] == CANDIDATE) & ((data["rank"] >= 0) if ranked_only else True)
    rows = np.flatnonzero(keep)
    return np.split(rows, np.flatnonzero(np.diff(data["group"][rows])) + 1) if len(rows) else []


def zoom_pairs(data: dict[str, np.ndarray], cfg: RankerConfig, seed: int = 0) -> np.ndarray:
    """VFN among one ratio's candidates: a window beats a smaller one inside it (`zoom_pairs` per group)."""
    rng = np.random.default_rng(seed)
    out = [np.zeros((0, 2), np.int64)]
    for rows in candidate_groups(data):
        x, y, w, h = (data[k][rows][:, None] for k in ("x", "y", "w", "h"))
        # [a, b]: b inside a and smaller
        a, b = np.nonzero((x.T >= x) & (y.T >= y) & (x.T + w.T <= x + w) & (y.T + h.T <= y + h) & (w.T * h.T < w * h))
        if len(a) > cfg.zoom_pairs:
            pick = rng.choice(len(a), cfg.zoom_pairs, replace=False)
            a, b = a[pick], b[pick]
        out.append(np.stack([rows[a], rows[b]], axis=1))
    return np.concatenate(out)


def shortlist_of(photo: PhotoContext, ratio: str, options: CropOptions, n: int) -> tuple[Windows, WindowFeatures, np.ndarray]:
    """A ratio's windows, their measures and what the engine lets a ranker re-order (`rank_candidates`)."""
    windows = propose_windows(photo.width, photo.height, parse_ratio(ratio), options)
    measured = measure_windows(windows, photo.index, photo.faces, photo.width, photo.height, options)
    return windows, measured, face_safe(order_by(composition_score(measured, options), measured.feasible)[:n], measured)


def add_photo(
    table: Table, stages: Stages, record: FixationRecord, faces: Sequence[FaceLabel] | None,
    cfg: RankerConfig, rng: np.random.Generator, train: bool, flip: bool = False,
) -> None:  # fmt: skip
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
    for r, label in enumerate(RATIOS):
        windows, measured, shortlist = shortlist_of(photo, label, options, cfg.shortlist)
        pick = shortlist
        if train:
            rest, others = shortlist[cfg.train_top :], np.setdiff1d(np.arange(len(windows)), shortlist)
            pick = np.concatenate([
                shortlist[: cfg.train_top],
                rng.choice(rest, min(cfg.train_shortlist, len(rest)), replace=False),
                rng.choice(others, min(cfg.train_outside, len(others)), replace=False),
            ])  # fmt: skip
        w = take(windows, pick)
        boxes = np.stack([w.x, w.y, w.w, w.h], axis=1)
        counts = box_counts(integral, boxes)
        position = {int(v): i for i, v in enumerate(shortlist)}  # place in the shortlist, -1: outside
        start = table.add_windows(
            photo, w, take(measured, pick), options, ratio=r, kind=CANDIDATE,
            rank=np.array([position.get(int(p), -1) for p in pick]), flipped=flip, dataset=record.dataset,
            name=record.name, counts=counts, oracle=oracle_counts(integral, boxes), total=total,
            face_cut=cuts_faces(boxes, countable) if countable is not None else False,
            has_countable=countable is not None and len(countable) > 0,
        )  # fmt: skip
        if train:
            rows = start + np.arange(len(pick))
            table.add_pairs(attention_pairs(rows, counts, w.w * 100_000 + w.h, total, cfg, rng), "attention")
            if trainable is not None and len(trainable):
                table.add_pairs(face_pairs(rows, cuts_faces(boxes, trainable), cfg, rng), "faces")
    if train and cfg.composition_pairs > 0:
        add_composition(table, photo, options, cfg, rng, flip, record.dataset)


def add_composition(table: Table, photo: PhotoContext, options: CropOptions, cfg: RankerConfig,
                    rng: np.random.Generator, flip: bool, dataset: str) -> None:  # fmt: skip
    """VFN's pairs: the full frame beats shifted and zoomed sub-windows of the photo's aspect."""
    W, H, n = photo.width, photo.height, cfg.composition_pairs
    s = rng.uniform(*cfg.composition_scale, size=n)
    w = np.maximum(1, np.rint(W * s)).astype(np.int64)
    h = np.maximum(1, np.rint(H * s)).astype(np.int64)
    x = np.rint(rng.uniform(0, 1, n) * (W - w)).astype(np.int64)
    y = np.rint(rng.uniform(0, 1, n) * (H - h)).astype(np.int64)
    windows = Windows(*(np.concatenate([[a], b]) for a, b in ((0, x), (0, y), (W, w), (H, h), (1.0, s))))
    measured = measure_windows(windows, photo.index, photo.faces, W, H, options)
    start = table.add_windows(photo, windows, measured, options, flipped=flip, dataset=dataset)
    table.add_pairs(np.stack([np.full(n, start), start + 1 + np.arange(n)], axis=1), "composition")


def build_models(cfg: RankerConfig, channels: int, channel_std: np.ndarray, stat_mean: np.ndarray, stat_std: np.ndarray):
    """(scorer, reducer, head, pairwise): Keras 3 models sharing one set of layers.

    scorer: regions (N, REGIONS, C) + stats (N, G) -> correction f (N, 1); exported: reducer,
    cells (K, C) -> (K, P), and head, descriptors (N, REGIONS * P + G) -> f; pairwise: the
    learned-temperature logit t * ((composition_a + f_a) - (composition_b + f_b)).
    """
    import keras
    from keras import layers, ops

    keras.utils.set_random_seed(cfg.seed)
    g, p = len(STAT_NAMES), cfg.reduced_channels
    # Linear (no bias, no mean shift): reducing then pooling equals pooling then reducing,
    # and an empty border stays exactly zero. Statistics only: the reduction is frozen at 0.
    scale = layers.Normalization(axis=-1, mean=np.zeros(channels), variance=np.square(channel_std), name="feature_scale")
    reduce = layers.Dense(p, use_bias=False, name="reduce", trainable=cfg.use_features,
                          kernel_initializer="glorot_uniform" if cfg.use_features else "zeros")  # fmt: skip
    stat_norm = layers.Normalization(axis=-1, mean=stat_mean, variance=np.square(stat_std), name="stat_norm")
    reg = keras.regularizers.L2(cfg.l2)
    feat_drop = layers.Dropout(cfg.feature_dropout, name="feature_dropout")
    hidden = layers.Dense(cfg.hidden, activation="relu", kernel_regularizer=reg, name="hidden")
    drop = layers.Dropout(cfg.dropout, name="dropout")
    out = layers.Dense(1, kernel_regularizer=reg, kernel_initializer="zeros", name="score")  # f = 0 at the start

    def head_fn(reduced_flat, stats):
        return out(drop(hidden(layers.Concatenate(name="concat")([feat_drop(reduced_flat), stat_norm(stats)]))))

    regions_in, stats_in = keras.Input((REGIONS, channels), name="regions"), keras.Input((g,), name="stats")
    reduced = layers.Flatten(name="flatten")(reduce(scale(regions_in)))
    scorer = keras.Model([regions_in, stats_in], head_fn(reduced, stats_in), name="ranker_scorer")
    cells_in = keras.Input((channels,), name="features")
    reducer = keras.Model(cells_in, reduce(scale(cells_in)), name="ranker_reduce")
    desc_in = keras.Input((REGIONS * p + g,), name="descriptor")
    head = keras.Model(desc_in, head_fn(desc_in[:, : REGIONS * p], desc_in[:, REGIONS * p :]), name="ranker_head")

    class PairLogit(layers.Layer):
        """t * ((c_a + f_a) - (c_b + f_b)), with t = exp(log_t) learned; f shrunk towards 0."""

        def build(self, input_shape):
            self.log_t = self.add_weight(shape=(), initializer=keras.initializers.Constant(math.log(cfg.temperature)), name="log_t")

        def call(self, inputs):
            ca, fa, cb, fb = inputs
            self.add_loss(cfg.correction_l2 * ops.mean(ops.square(fa) + ops.square(fb)))
            return ops.exp(self.log_t) * ((ca + fa) - (cb + fb))

    ra, sa = keras.Input((REGIONS, channels), name="regions_a"), keras.Input((g,), name="stats_a")
    rb, sb = keras.Input((REGIONS, channels), name="regions_b"), keras.Input((g,), name="stats_b")
    ca, cb = keras.Input((1,), name="composition_a"), keras.Input((1,), name="composition_b")
    logit = PairLogit(name="pair_logit")([ca, scorer([ra, sa]), cb, scorer([rb, sb])])
    return scorer, reducer, head, keras.Model([ra, sa, ca, rb, sb, cb], logit, name="ranker_pairwise")


def make_pair_batches(data: dict[str, np.ndarray], cfg: RankerConfig):
    """A keras PyDataset of shuffled pair batches gathered from the row table."""
    import keras

    rng, comp = np.random.default_rng(cfg.seed), data["composition"].astype(np.float32)[:, None]

    def side(rows: np.ndarray) -> tuple[np.ndarray, ...]:
        return data["regions"][rows].astype(np.float32), data["stats"][rows], comp[rows]

    class PairBatches(keras.utils.PyDataset):
        order = rng.permutation(len(data["pairs"]))

        def __len__(self) -> int:
            return math.ceil(len(self.order) / cfg.batch_pairs)

        def on_epoch_end(self) -> None:
            self.order = rng.permutation(len(data["pairs"]))

        def __getitem__(self, i: int):
            sel = self.order[i * cfg.batch_pairs : (i + 1) * cfg.batch_pairs]
            x = (*side(data["pairs"][sel, 0]), *side(data["pairs"][sel, 1]))
            return x, np.zeros((len(sel), 1), np.float32), data["weights"][sel]

    return PairBatches()


def choose(data: dict[str, np.ndarray], scores: np.ndarray | None, scope: str = DEFAULT_SCOPE) -> np.ndarray:
    """Each (photo, ratio) group's pick, as the engine's: the composition's first, or the best `scores`."""
    chosen = []
    for rows in candidate_groups(data, ranked_only=True):
        rows = rows[np.argsort(data["rank"][rows], kind="stable")]  # the composition's order
        if scores is not None:
            rows = of_first_size(rows, data["w"], data["h"]) if scope == "position" else rows
            rows = rows[order_by(scores[rows])]
        chosen.append(rows[0])
    return np.array(chosen, np.int64)


def crop_figures(data: dict[str, np.ndarray], chosen: np.ndarray) -> dict[str, Any]:
    """EVALUATION.md's figures of the chosen rows (`training.crop_eval.summarise`)."""
    of_oracle = oracle_shares(data["counts"][chosen], data["oracle"][chosen])
    return summarise([
        CropScore(
            dataset=str(data["dataset"][i]), image=str(data["name"][i]), ratio=RATIOS[data["ratio"][i]],
            retention=float(data["counts"][i] / max(int(data["total"][i]), 1)), of_oracle=float(of),
            area=float(data["area"][i]), face_cut=bool(data["face_cut"][i]) if data["has_countable"][i] else None,
        )
        for i, of in zip(chosen, of_oracle)
    ])  # fmt: skip


def predict_rows(scorer, data: dict[str, np.ndarray], rows: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Corrections of `rows` (NaN elsewhere) from the float scorer."""
    out = np.full(len(data["stats"]), np.nan, np.float32)
    for i in range(0, len(rows), batch):
        r = rows[i : i + batch]
        out[r] = np.asarray(scorer([data["regions"][r].astype(np.float32), data["stats"][r]], training=False)).reshape(-1)
    return out


def compare(data: dict[str, np.ndarray], correction: np.ndarray, scope: str = DEFAULT_SCOPE) -> dict[str, Any]:
    """Composition vs ranker (composition + learned correction) figures on one split, and the
    ranker's of_oracle gain with its bootstrap interval over photos (`paired_gain`)."""
    composition, ranker = choose(data, None), choose(data, data["composition"] + correction, scope)
    return {
        "composition": crop_figures(data, composition),
        "ranker": crop_figures(data, ranker),
        "gain": paired_gain(data, composition, ranker),
    }


#: Bootstrap draws and interval of `paired_gain` (95%, seeded: a card's figure reruns exactly).
GAIN_DRAWS, GAIN_LEVEL, GAIN_SEED = 2000, 0.95, 0
#: Fewer photos than this are no evidence either way: a bootstrap over a handful of photos
#: (a smoke run's one-photo split) has no spread to speak of.
GAIN_MIN_PHOTOS = 20


def paired_gain(data: dict[str, np.ndarray], composition: np.ndarray, ranker: np.ndarray) -> dict[str, Any]:
    """The ranker's mean of_oracle gain over the composition score's pick, crop by crop (the same
    photo and ratio), with a bootstrap interval that resamples photos (a photo's ratios move
    together). Over the crops the figures' "all" pools (`REPORT_ONLY_SETS` left out), so the
    gain is the difference of the two means `beats_composition` compares. A gain whose
    interval includes 0 is what the same photos give by chance. ValueError when the two picks
    are not of the same photos and ratios, in the same order."""
    for key in ("dataset", "name", "ratio"):
        if key in data and not np.array_equal(data[key][composition], data[key][ranker]):
            raise ValueError(f"paired_gain: the two picks differ in {key}: not one pick per photo and ratio each")
    keep = np.array([str(data["dataset"][i]) not in REPORT_ONLY_SETS for i in composition], bool)
    composition, ranker = np.asarray(composition)[keep], np.asarray(ranker)[keep]
    gain = (oracle_shares(data["counts"][ranker], data["oracle"][ranker])
            - oracle_shares(data["counts"][composition], data["oracle"][composition]))
    photos = [(str(data["dataset"][i]), str(data["name"][i])) for i in composition]
    index = {photo: k for k, photo in enumerate(dict.fromkeys(photos))}
    photo = np.array([index[p] for p in photos], np.int64)
    n = len(index)
    if n == 0:
        return {"mean": 0.0, "ci": [0.0, 0.0], "photos": 0, "crops": 0}
    sums, counts = np.bincount(photo, gain, n), np.bincount(photo, None, n)
    draws = np.random.default_rng(GAIN_SEED).integers(0, n, size=(GAIN_DRAWS, n))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1 - GAIN_LEVEL) / 2
    return {"mean": float(gain.mean()), "ci": [float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))],
            "photos": n, "crops": int(len(gain))}


def selection_key(figures: dict[str, Any], area_slack: float = 0.01) -> tuple[float, float]:
    """Epoch choice on dev: no more face cuts and no smaller crops than composition, then of_oracle."""
    comp, rank = figures["composition"]["all"]["mean"], figures["ranker"]["all"]["mean"]
    cut_c, cut_r = comp["face_cut_rate"] or 0.0, rank["face_cut_rate"] or 0.0
    penalty = max(0.0, cut_r - cut_c) + max(0.0, comp["area"] - area_slack - rank["area"])
    return (-penalty, rank["of_oracle"])


def beats_composition(figures: dict[str, Any], area_slack: float = 0.01) -> bool:
    """The one "better than composition" rule (the card's `beats_composition`, so `ranker="auto"`):
    no more face cuts, no smaller crops, a higher of_oracle, and a gain beyond chance: the lower
    end of its bootstrap interval over at least GAIN_MIN_PHOTOS photos (`paired_gain`) above 0.
    The default chooser changes on evidence, not on a few crops of 440; figures without the
    interval (a run trained before it was measured) carry none, so they never make it the default."""
    penalty, of_oracle = selection_key(figures, area_slack)
    gain = figures.get("gain") or {}
    beyond_chance = gain.get("photos", 0) >= GAIN_MIN_PHOTOS and gain.get("ci", [0.0])[0] > 0
    return penalty == 0 and of_oracle > figures["composition"]["all"]["mean"]["of_oracle"] and beyond_chance


def build_table(
    stages: Stages, records: Sequence[FixationRecord], faces: dict[str, list[FaceLabel]], cfg: RankerConfig,
    train: bool, desc: str = "photos",
) -> dict[str, np.ndarray]:  # fmt: skip
    """Rows (and pairs, for training) of every photo."""
    from tqdm import tqdm

    rng = np.random.default_rng(cfg.seed + (0 if train else 1))
    table = Table()
    for record in tqdm(records, desc=desc, unit="img", file=sys.stderr):
        labels = faces.get(record.name) if record.dataset == "eyecrowd" else None
        for flip in (False, True) if train and cfg.flip else (False,):
            add_photo(table, stages, record, labels, cfg, rng, train, flip)
    return table.freeze()


def split_dev(train: Sequence[FixationRecord]) -> tuple[list[FixationRecord], list[FixationRecord]]:
    """(fit, dev): every 10th train image (index % 10 == 5, by name) is dev."""
    ordered = sorted(train, key=lambda r: r.name)
    return [r for i, r in enumerate(ordered) if i % 10 != 5], [r for i, r in enumerate(ordered) if i % 10 == 5]


def fit(cfg: RankerConfig, fit_data: dict[str, np.ndarray], dev_data: dict[str, np.ndarray], out_dir: Path):
    """Train pairwise, keep the best dev epoch: ((scorer, reducer, head), history, epoch, norm)."""
    import keras
    from keras import ops

    flat = fit_data["regions"].reshape(-1, fit_data["regions"].shape[2])
    channel_std = np.sqrt(np.mean(np.square(flat[:: max(1, len(flat) // 200_000)].astype(np.float64)), axis=0)) + 1e-6
    norm = (channel_std, fit_data["stats"].mean(axis=0).astype(np.float64), fit_data["stats"].std(axis=0).astype(np.float64) + 1e-6)
    scorer, reducer, head, pairwise = build_models(cfg, flat.shape[1], *norm)
    steps = math.ceil(len(fit_data["pairs"]) / cfg.batch_pairs) * cfg.epochs
    pairwise.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps)),
                     loss=lambda _, d: ops.softplus(-d))  # fmt: skip
    batches = make_pair_batches(fit_data, cfg)
    dev_rows = np.flatnonzero(dev_data["rank"] >= 0)
    history: list[dict[str, Any]] = []
    best: tuple[tuple[float, float], int] | None = None
    weights_path = out_dir / "ranker.weights.h5"
    for epoch in range(1, cfg.epochs + 1):
        t = time.perf_counter()
        loss = float(pairwise.fit(batches, epochs=1, verbose=0).history["loss"][-1])
        figures = compare(dev_data, predict_rows(scorer, dev_data, dev_rows), cfg.scope)
        r, c = figures["ranker"]["all"]["mean"], figures["composition"]["all"]["mean"]
        history.append({"epoch": epoch, "loss": loss, "dev": r})
        log.info("epoch %d loss %.4f  dev of_oracle %.4f (composition %.4f) face_cut %.3f (%.3f) area %.3f (%.3f)  %.0fs",
                 epoch, loss, r["of_oracle"], c["of_oracle"], r["face_cut_rate"] or 0, c["face_cut_rate"] or 0,
                 r["area"], c["area"], time.perf_counter() - t)  # fmt: skip
        key = selection_key(figures)
        if best is None or key > best[0]:
            best = (key, epoch)
            scorer.save_weights(weights_path)
    assert best is not None
    scorer.load_weights(weights_path)
    log.info("kept epoch %d (final temperature %.1f)", best[1], float(np.exp(np.asarray(pairwise.get_layer("pair_logit").log_t))))
    return (scorer, reducer, head), history, best[1], norm


def load_trained(run_dir: Path):
    """(config, scorer, reducer, head) of a finished run."""
    meta = json.loads((Path(run_dir) / "config.json").read_text())
    known = {f.name for f in fields(RankerConfig)}
    cfg = RankerConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items() if k in known})
    norm = np.load(Path(run_dir) / "normalisation.npz")
    scorer, reducer, head, _ = build_models(cfg, int(meta["channels"]), norm["channel_std"], norm["stat_mean"], norm["stat_std"])
    scorer.load_weights(Path(run_dir) / "ranker.weights.h5")
    return cfg, scorer, reducer, head


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/ranker"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="RankerConfig override, e.g. --set epochs=2 --set max_images=4")
    parser.add_argument("--reuse-tables", action="store_true", help="reuse the cached row tables in --out")
    parser.add_argument("--crossfit", type=Path, nargs="+", metavar="MODEL",
                        help="cross-fitting: fold k's saliency .tflite (trained without fold k), k = 0..N-1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = RankerConfig(**{k: json.loads(v) for k, _, v in (item.partition("=") for item in args.overrides)})
    args.out.mkdir(parents=True, exist_ok=True)

    sets = load_saliency_sets(args.data, ("osie", "eyecrowd"))
    faces = load_eyecrowd_faces(Path(args.data) / "saliency" / "eyecrowd")
    fit_records, dev_records = split_dev([r for s in sets.values() for r in s[0][: cfg.max_images]])
    val = [r for s in sets.values() for r in s[1][: cfg.max_images]]
    if args.crossfit:
        from autocrop.saliency import LiteRTSaliency

        from .saliency import fold_assignment

        stages = Stages(fold_models=tuple(LiteRTSaliency(p) for p in args.crossfit),
                        folds=fold_assignment(args.data, folds=len(args.crossfit)))  # fmt: skip
    else:
        stages = Stages()
    tables = {}
    for name, records, is_train in (("fit", fit_records, True), ("dev", dev_records, False), ("val", val, False)):
        path = args.out / f"table_{name}.npz"
        if not (args.reuse_tables and path.exists()):
            np.savez(path, **build_table(stages, records, faces, cfg, is_train, name))
        tables[name] = dict(np.load(path, allow_pickle=False))
    fit_data = dict(tables["fit"])
    if cfg.zoom_pairs > 0:
        zoom = pair_chunk(zoom_pairs(fit_data, cfg, cfg.seed), "composition")
        fit_data |= {k: np.concatenate([fit_data[k], v]) for k, v in zoom.items()}
    # Each kind of preference weighs as the config says (the tables hold unit weights).
    kind_weight = np.array([1.0, cfg.face_weight, cfg.composition_weight], np.float32)
    fit_data["weights"] = fit_data["weights"] * kind_weight[fit_data["pair_kinds"]]
    counts = dict(zip(PAIR_KINDS, np.bincount(fit_data["pair_kinds"], minlength=len(PAIR_KINDS)).tolist()))
    log.info("fit rows %d, pairs %s", len(fit_data["stats"]), counts)

    (scorer, _, _), history, epoch, norm = fit(cfg, fit_data, tables["dev"], args.out)
    np.savez(args.out / "normalisation.npz", channel_std=norm[0], stat_mean=norm[1], stat_std=norm[2])
    figures = {name: compare(t, predict_rows(scorer, t, np.flatnonzero(t["rank"] >= 0)), cfg.scope)
               for name, t in tables.items() if name != "fit"}  # fmt: skip
    meta = {
        "config": asdict(cfg), "channels": int(fit_data["regions"].shape[2]), "saliency_model": stages.saliency.name,
        "crossfit": [str(p) for p in args.crossfit] if args.crossfit else None, "stats": list(STAT_NAMES),
        "grid": GRID, "regions": REGIONS, "epoch": epoch,
        "photos": {"fit": len(fit_records), "dev": len(dev_records), "val": len(val)},
        "pairs": counts, "history": history, "figures": figures,
    }  # fmt: skip
    (args.out / "config.json").write_text(json.dumps(meta, indent=1))
    for name, method in ((n, m) for n in ("dev", "val") for m in ("composition", "ranker")):
        m = figures[name][method]["all"]["mean"]
        print(f"{name} {method:12s} of_oracle {m['of_oracle']:.4f} face_cut {m['face_cut_rate']} area {m['area']:.3f}")
    for name in ("dev", "val"):
        g = figures[name]["gain"]
        print(f"{name} gain {g['mean']:+.4f} [{g['ci'][0]:+.4f}, {g['ci'][1]:+.4f}] over {g['photos']} photos; "
              f"beats composition: {beats_composition(figures[name])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
