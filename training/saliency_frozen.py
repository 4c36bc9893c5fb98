"""Frozen-encoder saliency (DeepGaze II's recipe): ImageNet taps cached once, readout trained.

    python -m training.saliency_frozen --out runs/sal_frozen [--sets osie,eyecrowd[,emod]]
        [--cache runs/taps] [--epochs 20] [--deep-tap] [--single-prior] [--emod DIR]

With little eye-tracking data, a net whose encoder is fine-tuned on it learns the training
sets' photos (and their centre bias) rather than what draws the eye; DeepGaze II led MIT300
with a frozen ImageNet net and a small readout. Here the MobileNetV2 encoder keeps its
ImageNet weights, its taps (strides 4, 8, 16, 32, optionally the 1280-channel classifier
conv) are computed once per training photo and augmented view (flips, crops, colour, as
`training.saliency` augments) and cached on disk, and only the readout (context module,
decoder, per-dataset priors) trains, in minutes on a CPU. The run folder holds the readout's
weights and a config; `assemble` puts the ImageNet encoder back under it for export.

`emod` in `--sets` (with `--emod ../shared/data/saliency/emod_fdm`) adds EMOd's free-viewing
maps as one more set with its own prior: maps only, so its cached fixation channel is empty
and NSS learns nothing from it (KL and CC do). Every 10th photo by name is its validation part.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np

from .backbone import DEFAULT_WEIGHTS, load_torchvision_weights, mobilenet_v2_features
from .datasets import DEFAULT_DATA_ROOT, REPORT_ONLY_SETS, FixationRecord, load_saliency_sets
from .saliency import (
    TrainConfig,
    _compile,
    assign_folds,
    cache_map_sample,
    cache_sample,
    check_emod_arg,
    emod_maps,
    make_example,
    read_density,
)
from .saliency_model import SaliencyNetConfig, inference_net, readout_net, tap_shapes

log = logging.getLogger("training.saliency_frozen")

#: Augmented views cached per training photo (view 0 is the plain letterboxed photo).
VIEWS = 4
#: Every set the cache holds: the training sets and the report-only set (view 0 only).
CACHE_SETS = ("osie", "eyecrowd", "mit1003")
#: The maps-only set `--emod` adds to the cache (photos and density maps, no points).
MAPS_SET = "emod"


@dataclass(frozen=True)
class FrozenConfig:
    """What decides a frozen-encoder run; saved as config.json beside the readout weights."""

    sets: tuple[str, ...] = ("osie", "eyecrowd")
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    views: int = VIEWS
    #: Cross-fitting: with folds > 1 the training photos of fold `fold` are held out
    #: (`training.saliency.assign_folds`, interleaved over the sets in order), so the model's
    #: maps of those photos are maps of photos it never saw.
    folds: int = 1
    fold: int = 0
    frozen_encoder: bool = True
    net: SaliencyNetConfig = field(default_factory=SaliencyNetConfig)
    augment: TrainConfig = field(default_factory=TrainConfig)  # the augmentation settings used


def encoder(config: SaliencyNetConfig, backbone: Path = DEFAULT_WEIGHTS) -> keras.Model:
    """The ImageNet MobileNetV2 returning the taps the readout reads."""
    image = keras.Input((config.canvas, config.canvas, 3), name="image")
    taps = mobilenet_v2_features(image, include_top_conv=config.deep_tap)
    model = keras.Model(image, {f"tap{k}": taps[k] for k in tap_shapes(config)}, name="encoder")
    load_torchvision_weights(model, backbone)
    return model


def _cache_file(cache: Path, dataset: str, part: str) -> Path:
    # Every file holds every tap (the deep one too), so one cache serves every readout.
    return cache / f"{dataset}_{part}.npz"


def _maps_parts(emod: Path | None, limit: int | None) -> list[tuple[str, str, list, list]]:
    """(set, part, names, samples) of the maps-only set, when given."""
    if emod is None:
        return []
    out = []
    for part, pairs in zip(("train", "val"), emod_maps(Path(emod))):
        pairs = pairs[:limit]
        out.append((MAPS_SET, part, [img.stem for img, _ in pairs],
                    [lambda img=img, m=m: cache_map_sample(img, read_density(m)) for img, m in pairs]))
    return out


def build_cache(data_root: Path, cache: Path, config: SaliencyNetConfig, views: int = VIEWS,
                backbone: Path = DEFAULT_WEIGHTS, batch: int = 16, limit: int | None = None,
                emod: Path | None = None) -> None:
    """Encode every photo's views once (the first `limit` per set-part); skip files that exist."""
    cache.mkdir(parents=True, exist_ok=True)
    config = replace(config, deep_tap=True)
    net = None
    aug = TrainConfig()
    sets = load_saliency_sets(data_root, CACHE_SETS)
    parts = [(name, part, [r.name for r in records], [lambda r=r: cache_sample(r) for r in records])
             for name in CACHE_SETS
             for part, records in (("train", sets[name][0][:limit]), ("val", sets[name][1][:limit]))]
    for name, part, names, loaders in parts + _maps_parts(emod, limit):
        path = _cache_file(cache, name, part)
        if path.exists() or not loaders:
            continue
        net = net or encoder(config, backbone)
        # Training photos get augmented views; validation photos only the plain one.
        n_views = views if part == "train" else 1
        t0 = time.time()
        taps: dict[str, list[np.ndarray]] = {}
        targets = []
        canvases = []

        def flush() -> None:
            out = net.predict(np.stack(canvases), verbose=0, batch_size=batch)
            for k, v in out.items():
                taps.setdefault(k, []).append(v.astype(np.float16))
            canvases.clear()

        for i, load in enumerate(loaders):
            sample = load()
            for v in range(n_views):
                rng = None if v == 0 else np.random.default_rng((aug.seed, i, v))
                image, target = make_example(sample, rng, aug)
                canvases.append(image)
                targets.append(target.astype(np.float16))
                if len(canvases) == 64:
                    flush()
        if canvases:
            flush()
        arrays = {k: np.concatenate(v) for k, v in taps.items()}
        np.savez(path, targets=np.stack(targets), views=np.array(n_views),
                 names=np.array(names), **arrays)
        log.info("cached %s (%d photos x %d views) in %.0fs", path.name, len(loaders), n_views,
                 time.time() - t0)


@dataclass
class TapSet:
    """Cached taps of one set-part: arrays are (photos * views, ...)."""

    dataset: str
    names: list[str]
    views: int
    taps: dict[str, np.ndarray]
    targets: np.ndarray

    def subset(self, keep: np.ndarray) -> TapSet:
        """The photos at indices `keep` (every view of each)."""
        keep = np.asarray(keep, np.intp)
        rows = (keep[:, None] * self.views + np.arange(self.views)[None, :]).ravel()
        return TapSet(self.dataset, [self.names[i] for i in keep], self.views,
                      {k: v[rows] for k, v in self.taps.items()}, self.targets[rows])

    def inputs(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[rows].astype(np.float32) for k, v in self.taps.items()}


def load_taps(cache: Path, dataset: str, part: str, config: SaliencyNetConfig) -> TapSet:
    """One cached set-part (taps the readout config needs, in float16)."""
    with np.load(_cache_file(cache, dataset, part)) as z:
        keys = [f"tap{k}" for k in ((4, 8, 16) if config.tune_top else tap_shapes(config))]
        return TapSet(dataset, [str(n) for n in z["names"]], int(z["views"]),
                      {k: z[k] for k in keys}, z["targets"])


class TapBatches(keras.utils.PyDataset):
    """Each epoch, one random cached view of every photo, shuffled; deterministic per seed."""

    def __init__(self, parts: list[TapSet], cfg: FrozenConfig, augment: bool, **kw):
        super().__init__(**kw)
        self.parts, self.cfg, self.augment = parts, cfg, augment
        self.index = [(p, i) for p, part in enumerate(parts) for i in range(len(part.names))]
        self.epoch = 0
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.ceil(len(self.index) / self.cfg.batch_size)

    def on_epoch_end(self) -> None:
        rng = np.random.default_rng((self.cfg.seed, self.epoch))
        self.order = rng.permutation(len(self.index)) if self.augment else np.arange(len(self.index))
        self.view = [int(rng.integers(0, p.views)) if self.augment else 0 for p in self.parts
                     for _ in p.names]
        self.epoch += 1

    def __getitem__(self, b: int):
        picks = self.order[b * self.cfg.batch_size : (b + 1) * self.cfg.batch_size]
        inputs: dict[str, list[np.ndarray]] = {}
        targets, sets = [], []
        for j in picks:
            p, i = self.index[j]
            part = self.parts[p]
            row = i * part.views + self.view[j]
            for k, v in part.taps.items():
                inputs.setdefault(k, []).append(v[row])
            targets.append(part.targets[row])
            sets.append(self.cfg.sets.index(part.dataset))
        x = {k: np.stack(v).astype(np.float32) for k, v in inputs.items()}
        if self.cfg.net.priors > 1:
            x["dataset"] = np.eye(self.cfg.net.priors, dtype=np.float32)[sets]
        return x, np.stack(targets).astype(np.float32)


def train(cfg: FrozenConfig, cache: Path, out_dir: Path, verbose: int = 2) -> dict:
    """Train the readout on cached taps; save weights, config and history in `out_dir`."""
    if set(cfg.sets) & set(REPORT_ONLY_SETS):
        raise ValueError("out-of-domain sets are for evaluation only (EVALUATION.md)")
    keras.utils.set_random_seed(cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_parts = held_in([load_taps(cache, s, "train", cfg.net) for s in cfg.sets], cfg.folds, cfg.fold)
    val_parts = [load_taps(cache, s, "val", cfg.net) for s in cfg.sets]
    model = new_readout(cfg.net)
    steps = cfg.epochs * TapBatches(train_parts, cfg, True).__len__()
    aug = TrainConfig(weight_decay=cfg.weight_decay)
    _compile(model, keras.optimizers.schedules.CosineDecay(cfg.lr, decay_steps=steps, alpha=0.05), aug)
    t0 = time.time()
    h = model.fit(TapBatches(train_parts, cfg, True), validation_data=TapBatches(val_parts, cfg, False),
                  epochs=cfg.epochs, verbose=verbose)
    history = {k: [float(x) for x in v] for k, v in h.history.items()}
    model.save_weights(out_dir / "readout.weights.h5")
    (out_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    (out_dir / "history.json").write_text(json.dumps(history, indent=2))
    log.info("saved %s in %.1f min", out_dir, (time.time() - t0) / 60)
    return history


def held_in(parts: list[TapSet], folds: int, fold: int) -> list[TapSet]:
    """The training parts without cross-fitting fold `fold` (all of them when folds <= 1).

    Folds interleave over the fixation sets in order, as `training.saliency` assigns them;
    the maps-only set is never folded (it is not a photo the crop step is tuned on) and is
    left out of the count, so listing it anywhere in --sets moves no fixation photo's fold."""
    if folds <= 1:
        return parts
    if not 0 <= fold < folds:
        raise ValueError(f"fold {fold} is not in 0..{folds - 1}")
    out, start = [], 0
    for part in parts:
        if part.dataset == MAPS_SET:
            out.append(part)
            continue
        ks = np.array(assign_folds(list(range(start + len(part.names))), folds)[start:])
        out.append(part.subset(np.flatnonzero(ks != fold)))
        start += len(part.names)
    return out


def run_config(run_dir: Path) -> FrozenConfig:
    """A run folder's config, as the dataclass."""
    raw = json.loads((Path(run_dir) / "config.json").read_text())
    net = SaliencyNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.pop("net").items()})
    raw.pop("augment", None)
    return FrozenConfig(**{**raw, "sets": tuple(raw["sets"]), "net": net})


def new_readout(config: SaliencyNetConfig, backbone: Path = DEFAULT_WEIGHTS) -> keras.Model:
    """A readout to train; encoder blocks it fine-tunes start from ImageNet."""
    model = readout_net(config)
    if config.tune_top:
        load_torchvision_weights(model, backbone)
        for layer in model.layers:  # small batches: BatchNorm statistics stay ImageNet's
            if layer.name.startswith("features.") and isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    return model


def load_readout(run_dir: Path) -> keras.Model:
    """The trained readout of a run folder."""
    model = readout_net(run_config(run_dir).net)
    model.load_weights(Path(run_dir) / "readout.weights.h5")
    return model


def assemble(run_dir: Path, prior_map: np.ndarray, backbone: Path = DEFAULT_WEIGHTS) -> keras.Model:
    """The image-only shipped net: ImageNet encoder + the run's readout + `prior_map` (logits)."""
    return inference_net(load_readout(run_dir), run_config(run_dir).net, prior_map, backbone)


def content_logits(model: keras.Model, part: TapSet, batch: int = 32) -> np.ndarray:
    """(photos, S/4, S/4) logits of view 0 of every photo, before any prior."""
    head = keras.Model(model.inputs, model.get_layer("head").output)
    rows = np.arange(len(part.names)) * part.views
    outs = []
    for s in range(0, len(rows), batch):
        x = part.inputs(rows[s : s + batch])
        if len(head.inputs) > len(x):
            x["dataset"] = np.zeros((len(rows[s : s + batch]), head.inputs[-1].shape[-1]), np.float32)
        outs.append(np.asarray(head.predict(x, verbose=0))[..., 0])
    return np.concatenate(outs)


def records_for(data_root: Path, part: TapSet, which: str) -> list[FixationRecord]:
    """The records of a cached set-part, in cache order."""
    split = load_saliency_sets(data_root, (part.dataset,))[part.dataset]
    records = split[0] if which == "train" else split[1]
    records = records[: len(part.names)]
    assert [r.name for r in records] == part.names, "cache is stale: rebuild it"
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--backbone", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--cache", type=Path, default=Path("runs/taps"))
    parser.add_argument("--out", type=Path, default=Path("runs/sal_frozen"))
    parser.add_argument("--sets", default="osie,eyecrowd")
    parser.add_argument("--epochs", type=int, default=FrozenConfig.epochs)
    parser.add_argument("--lr", type=float, default=FrozenConfig.lr)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deep-tap", action="store_true")
    parser.add_argument("--single-prior", action="store_true")
    parser.add_argument("--tune-top", action="store_true", help="fine-tune the stride-32 encoder blocks")
    parser.add_argument("--cache-only", action="store_true")
    parser.add_argument("--emod", type=Path, default=None, metavar="DIR",
                        help="EMOd free-viewing maps (../shared/data/saliency/emod_fdm): cached as the "
                             "maps-only set 'emod', which --sets may then name")
    parser.add_argument("--folds", type=int, default=1, help="cross-fitting: number of folds")
    parser.add_argument("--fold", type=int, default=0, help="cross-fitting: the fold held out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sets = tuple(s for s in args.sets.split(",") if s)
    net = SaliencyNetConfig(priors=1 if args.single_prior else len(sets), deep_tap=args.deep_tap,
                            tune_top=args.tune_top)
    if MAPS_SET in sets and args.emod is None:
        parser.error(f"--sets names {MAPS_SET!r}: give its folder with --emod")
    check_emod_arg(parser, args.emod)
    build_cache(args.data, args.cache, net, backbone=args.backbone, emod=args.emod)
    if args.cache_only:
        return
    cfg = FrozenConfig(sets=sets, epochs=args.epochs, lr=args.lr, seed=args.seed, net=net,
                      folds=args.folds, fold=args.fold)
    train(cfg, args.cache, args.out)


if __name__ == "__main__":
    main()
