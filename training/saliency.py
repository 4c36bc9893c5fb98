"""Train the saliency network on OSIE + EyeCrowd fixations (validation split never seen).

    python -m training.saliency --out runs/saliency [--data ../shared/data] [--epochs 24]

Two phases: the decoder learns on a frozen ImageNet encoder, then everything fine-tunes
(encoder BatchNorm stays frozen) with a cosine-decayed learning rate. Hyper-parameters
live in one dataclass saved beside the weights. Runs on CPU (about 20 minutes on 2 cores)
or, with KERAS_BACKEND=jax/torch, on a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import keras
import numpy as np

from autocrop.preprocess import CANVAS, OUTPUT_STRIDE, PAD_RGB, letterbox_geometry

from .backbone import DEFAULT_WEIGHTS, load_torchvision_weights
from .datasets import DEFAULT_DATA_ROOT, REPORT_ONLY_SETS, FixationRecord, load_saliency_sets
from .fixations import density_map
from .saliency_model import (
    LossWeights,
    SaliencyLoss,
    SaliencyNetConfig,
    build_saliency_net,
    cc_metric,
    nss_metric,
    set_backbone_trainable,
)

log = logging.getLogger("training.saliency")

#: Long side at which training photos are cached in memory (a bit above the canvas so
#: random crops keep detail).
CACHE_LONG_SIDE = 384


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; saved as config.json beside the weights."""

    sets: tuple[str, ...] = ("osie", "eyecrowd")
    epochs_frozen: int = 3  # decoder-only warm-up on the frozen encoder
    epochs: int = 24  # total epochs (frozen + fine-tune)
    batch_size: int = 16
    lr_decoder: float = 1e-3
    lr_finetune: float = 2e-4
    weight_decay: float = 1e-4
    seed: int = 0
    # Augmentation: flips, crops (which change the aspect ratio), colour.
    p_flip: float = 0.5
    p_crop: float = 0.7
    crop_min: float = 0.7  # min side fraction kept by a random crop
    p_colour: float = 0.8
    p_gray: float = 0.1
    max_images: int | None = None  # for smoke tests
    # Cross-fitting: with folds > 1, train on the training photos outside fold `fold`
    # (training index % folds != fold), so that the held-out fold gets honest maps, as
    # new photos do: the crop ranker and the engine's weights are tuned on those, never on
    # the validation split. folds = 1 trains on every training photo (the shipped model).
    folds: int = 1
    fold: int = 0
    # Distillation ("ensembles distilled into one model"): the training photos' density
    # target becomes (1 - distill) x people's density + distill x the teachers' map, each
    # scaled to sum 1. Teachers are exported .tflite files with a weight each (their cards'
    # run-time priors apply, as at run time); their weighted mean is the ensemble one net
    # learns, so run time keeps one model's latency. NSS keeps people's fixations, and the
    # validation split is always scored on people alone.
    teachers: tuple[tuple[str, float], ...] = ()
    distill: float = 0.0
    teacher_flip: bool = False  # the teachers also see the mirrored photo (EnsembleTeacher)
    # Photos without people's data (../shared/data/photos): their whole target is the
    # teachers' map and they carry no fixations, so only KL and CC learn from them (NSS needs
    # points). `unlabelled_share` keeps that share of them (a seeded draw per source), to
    # measure what the amount of unlabelled data buys.
    unlabelled: str | None = None
    unlabelled_share: float = 1.0
    # Free-viewing density maps without points (EMOd): a training set of maps, blended with
    # the teachers' map like the fixation sets; NSS cannot use them (it scores a map at
    # people's fixation points, and EMOd publishes maps only), so KL and CC learn from them.
    # Every 10th by name is held out, as for the fixation sets. With per-dataset priors
    # (net.priors == len(sets) + 1) EMOd is a third set with its own learned prior, so its
    # observers' centre bias is not learned as content either.
    emod: str | None = None
    loss: LossWeights = field(default_factory=LossWeights)
    net: SaliencyNetConfig = field(default_factory=SaliencyNetConfig)


@dataclass
class CachedSample:
    """A training photo shrunk to CACHE_LONG_SIDE with its density and fixations."""

    rgb: np.ndarray  # uint8 HxWx3
    density: np.ndarray  # float32 HxW (sigma from the full-size photo, EVALUATION.md)
    fixations: np.ndarray  # (N, 2) float32 x, y in cached pixels
    dataset: int = 0  # index of the record's set in TrainConfig.sets (per-dataset priors)


def cache_sample(record: FixationRecord, dataset: int = 0, teacher=None,
                 distill: float = 0.0) -> CachedSample:
    """Load, shrink and pair one record with its ground-truth density.

    With a `teacher` (rgb -> map at the photo's size) and `distill` > 0 the density is the
    blend `TrainConfig.distill` describes."""
    rgb = record.load_rgb()
    density = density_map(record.fixations, record.height, record.width)
    if teacher is not None and distill > 0:
        density = blend_target(density, teacher(rgb), distill)
    scale = CACHE_LONG_SIDE / max(record.width, record.height)
    size = (round(record.width * scale), round(record.height * scale))
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    density = cv2.resize(density, size, interpolation=cv2.INTER_AREA)
    return CachedSample(rgb, density.astype(np.float32), record.fixations * scale, dataset)


def cache_map_sample(image_path: Path, density: np.ndarray | None, teacher=None,
                     distill: float = 0.0, dataset: int = 0) -> CachedSample:
    """A photo without fixation points: `density` (people's map, or None for an unlabelled
    photo) blended with the teachers' map, or the teachers' map alone when there is none."""
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {image_path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    if density is not None and density.shape != (h, w):  # a map stored at another size
        density = cv2.resize(density.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    if density is None:
        if teacher is None:
            raise ValueError("an unlabelled photo needs a teacher")
        density = teacher(rgb).astype(np.float32)
    elif teacher is not None and distill > 0:
        density = blend_target(density, teacher(rgb), distill)
    density = density / max(float(density.sum()), 1e-12)
    scale = CACHE_LONG_SIDE / max(w, h)
    size = (round(w * scale), round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    rgb = cv2.resize(rgb, size, interpolation=interp)
    density = cv2.resize(density, size, interpolation=interp)
    return CachedSample(rgb, density.astype(np.float32), np.zeros((0, 2), np.float32), dataset)


def unlabelled_photos(root: Path, share: float = 1.0, seed: int = 0) -> list[Path]:
    """The photos listed in `root`/manifest.csv (source,name,...), `share` of each source
    drawn with a fixed seed (so "half" keeps every kind of photo, half as many)."""
    import csv

    by_source: dict[str, list[Path]] = {}
    with open(root / "manifest.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            by_source.setdefault(row["source"], []).append(root / row["source"] / row["name"])
    out: list[Path] = []
    for i, (source, paths) in enumerate(sorted(by_source.items())):
        paths.sort()
        keep = len(paths) if share >= 1 else round(len(paths) * share)
        order = np.random.default_rng((seed, i)).permutation(len(paths))[:keep]
        out.extend(paths[j] for j in sorted(order))
    return out


def emod_maps(root: Path) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """(train, val) (photo, density map) pairs of the EMOd free-viewing set: sorted by name,
    every 10th held out, like the fixation sets."""
    pairs = sorted(((p, root / "maps" / (p.stem + ".png")) for p in (root / "images").glob("*.jpg")),
                   key=lambda pair: pair[0].name)
    if not pairs or any(not m.is_file() for _, m in pairs):
        raise FileNotFoundError(f"{root} holds no EMOd layout (images/<id>.jpg with maps/<id>.png for each)")
    return ([p for i, p in enumerate(pairs) if i % 10 != 0], [p for i, p in enumerate(pairs) if i % 10 == 0])


def check_emod_arg(parser: argparse.ArgumentParser, root: Path | None) -> None:
    """A command's --emod folder, checked before any work: a usage error (exit 2) unless it
    holds EMOd's layout."""
    if root is not None:
        try:
            emod_maps(root)
        except FileNotFoundError as exc:
            parser.error(f"--emod: {exc}")


def read_density(path: Path) -> np.ndarray:
    """An 8-bit density map (one channel of it) as float32 summing to 1."""
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise FileNotFoundError(f"cannot read map {path}")
    density = grey.astype(np.float32)
    return density / max(float(density.sum()), 1e-12)


def blend_target(density: np.ndarray, teacher_map: np.ndarray, distill: float) -> np.ndarray:
    """(1 - distill) x density + distill x teacher map, each scaled to sum 1 first."""
    people = density / max(float(density.sum()), 1e-12)
    taught = np.maximum(teacher_map.astype(np.float32), 0)
    taught = taught / max(float(taught.sum()), 1e-12)
    return ((1 - distill) * people + distill * taught).astype(np.float32)


class EnsembleTeacher:
    """The weighted mean of exported saliency models' maps (each in [0, 1], card priors on).

    With `flip` each member also sees the mirrored photo and its map is mirrored back and
    averaged in (test-time flipping: measured on the shipped model alone it lifts validation
    CC 0.804 -> 0.812 and MIT1003 0.698 -> 0.711, at twice the passes, which the run-time
    budget cannot pay but a teacher can)."""

    def __init__(self, teachers: tuple[tuple[str, float], ...], flip: bool = False):
        from autocrop.saliency import LiteRTSaliency

        self.flip = flip
        self.members = [(LiteRTSaliency(path, num_threads=os.cpu_count() or 1), float(w))
                        for path, w in teachers]
        total = sum(w for _, w in self.members)
        if not self.members or total <= 0:
            raise ValueError("teachers need at least one model with a positive weight")
        self.members = [(m, w / total) for m, w in self.members]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        out = sum(w * m.predict(rgb) for m, w in self.members)
        if self.flip:
            mirrored = np.ascontiguousarray(rgb[:, ::-1])
            out = 0.5 * (out + sum(w * m.predict(mirrored) for m, w in self.members)[:, ::-1])
        return out


def _place(image: np.ndarray, canvas: int, pad: float | tuple) -> np.ndarray:
    """Letterbox any-channel image into a square canvas (same geometry as the runtime)."""
    box = letterbox_geometry(image.shape[0], image.shape[1], canvas)
    interp = cv2.INTER_AREA if box.w < image.shape[1] else cv2.INTER_LINEAR
    resized = cv2.resize(image, (box.w, box.h), interpolation=interp)
    out = np.empty((canvas, canvas) + image.shape[2:], np.float32)
    out[...] = pad
    out[box.y : box.y + box.h, box.x : box.x + box.w] = resized
    return out


def make_example(sample: CachedSample, rng: np.random.Generator | None, cfg: TrainConfig,
                 canvas: int = CANVAS) -> tuple[np.ndarray, np.ndarray]:
    """One (canvas image, [density, fixation map]) pair, augmented when `rng` is given."""
    rgb, density, fix = sample.rgb, sample.density, sample.fixations
    h, w = rgb.shape[:2]
    if rng is not None and rng.random() < cfg.p_crop:
        cw = int(w * rng.uniform(cfg.crop_min, 1.0))
        ch = int(h * rng.uniform(cfg.crop_min, 1.0))
        x0 = int(rng.integers(0, w - cw + 1))
        y0 = int(rng.integers(0, h - ch + 1))
        rgb, density = rgb[y0 : y0 + ch, x0 : x0 + cw], density[y0 : y0 + ch, x0 : x0 + cw]
        fix = fix - np.array([x0, y0], np.float32)
        keep = (fix[:, 0] >= -0.5) & (fix[:, 0] < cw - 0.5) & (fix[:, 1] >= -0.5) & (fix[:, 1] < ch - 0.5)
        fix = fix[keep]
        h, w = ch, cw
    if rng is not None and rng.random() < cfg.p_flip:
        rgb, density = rgb[:, ::-1], density[:, ::-1]
        fix = fix.copy()
        fix[:, 0] = w - 1 - fix[:, 0]
    image = _place(np.ascontiguousarray(rgb), canvas, PAD_RGB)
    if rng is not None:
        image = _colour_jitter(image, rng, cfg)
    dense = _place(np.ascontiguousarray(density), canvas, 0.0)
    out = canvas // OUTPUT_STRIDE
    dense = cv2.resize(dense, (out, out), interpolation=cv2.INTER_AREA)
    fixmap = np.zeros((out, out), np.float32)
    box = letterbox_geometry(h, w, canvas)
    if len(fix):
        cx = (box.x + (fix[:, 0] + 0.5) * box.w / w) / OUTPUT_STRIDE
        cy = (box.y + (fix[:, 1] + 0.5) * box.h / h) / OUTPUT_STRIDE
        fixmap[np.clip(cy.astype(int), 0, out - 1), np.clip(cx.astype(int), 0, out - 1)] = 1.0
    return image, np.stack([dense, fixmap], axis=-1)


def _colour_jitter(image: np.ndarray, rng: np.random.Generator, cfg: TrainConfig) -> np.ndarray:
    if rng.random() < cfg.p_colour:
        mean = image.mean(axis=(0, 1), keepdims=True)
        image = (image - mean) * rng.uniform(0.75, 1.25) + mean * rng.uniform(0.8, 1.2)
        gray = image.mean(axis=2, keepdims=True)
        image = gray + (image - gray) * rng.uniform(0.6, 1.4)
    if rng.random() < cfg.p_gray:
        image = np.repeat(image.mean(axis=2, keepdims=True), 3, axis=2)
    return np.clip(image, 0, 255).astype(np.float32)


class SaliencyBatches(keras.utils.PyDataset):
    """Shuffled, augmented batches; deterministic per (seed, epoch)."""

    def __init__(self, samples: list[CachedSample], cfg: TrainConfig, augment: bool, **kw):
        super().__init__(**kw)
        self.samples, self.cfg, self.augment = samples, cfg, augment
        self.epoch = 0
        self.order = np.arange(len(samples))
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.ceil(len(self.samples) / self.cfg.batch_size)

    def on_epoch_end(self) -> None:
        if self.augment:
            self.order = np.random.default_rng((self.cfg.seed, self.epoch)).permutation(len(self.samples))
        self.epoch += 1

    def __getitem__(self, index: int):
        idx = self.order[index * self.cfg.batch_size : (index + 1) * self.cfg.batch_size]
        rng = np.random.default_rng((self.cfg.seed, self.epoch, index)) if self.augment else None
        pairs = [make_example(self.samples[i], rng, self.cfg) for i in idx]
        images, targets = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
        if self.cfg.net.priors > 1:
            onehot = np.eye(self.cfg.net.priors, dtype=np.float32)[[self.samples[i].dataset for i in idx]]
            return {"image": images, "dataset": onehot}, targets
        return images, targets


def _compile(model: keras.Model, lr, cfg: TrainConfig) -> None:
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=lr, weight_decay=cfg.weight_decay),
        loss=SaliencyLoss(cfg.loss),
        metrics=[cc_metric, nss_metric],
    )


def train(cfg: TrainConfig, data_root: Path, out_dir: Path, backbone: Path = DEFAULT_WEIGHTS,
          verbose: int = 2) -> dict:
    """Train, save weights + config + history to `out_dir`, return the history."""
    keras.utils.set_random_seed(cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    if set(cfg.sets) & set(REPORT_ONLY_SETS):
        raise ValueError(f"{sorted(set(cfg.sets) & set(REPORT_ONLY_SETS))} is out-of-domain "
                         "validation: evaluate on it, never train on it (EVALUATION.md)")
    sets = load_saliency_sets(data_root, cfg.sets)
    train_records = [r for name in cfg.sets for r in sets[name][0]]
    val_records = [r for name in cfg.sets for r in sets[name][1]]
    if cfg.folds > 1:
        folds = assign_folds(train_records, cfg.folds)
        train_records = [r for r, k in zip(train_records, folds) if k != cfg.fold]
    if cfg.max_images:
        train_records = train_records[: cfg.max_images]
        val_records = val_records[: max(2, cfg.max_images // 4)]
    if cfg.emod and cfg.net.priors not in (1, len(cfg.sets) + 1):
        raise ValueError(f"with EMOd, priors is 1 (shared) or {len(cfg.sets) + 1} (one per fixation "
                         f"set and one for EMOd), not {cfg.net.priors}")
    t0 = time.time()
    index = {name: i for i, name in enumerate(cfg.sets)}
    teacher = EnsembleTeacher(cfg.teachers, cfg.teacher_flip) if cfg.teachers and cfg.distill > 0 else None
    train_samples = [cache_sample(r, index[r.dataset], teacher, cfg.distill) for r in train_records]
    if cfg.emod:
        emod_train, _ = emod_maps(Path(cfg.emod))
        emod_index = len(cfg.sets) if cfg.net.priors > 1 else 0
        train_samples += [cache_map_sample(img, read_density(m), teacher, cfg.distill, emod_index)
                          for img, m in emod_train[: cfg.max_images or None]]
    if cfg.unlabelled:
        if teacher is None:
            raise ValueError("unlabelled photos need --teacher and --distill > 0")
        photos = unlabelled_photos(Path(cfg.unlabelled), cfg.unlabelled_share, cfg.seed)
        train_samples += [cache_map_sample(p, None, teacher) for p in photos[: cfg.max_images or None]]
    val_samples = [cache_sample(r, index[r.dataset]) for r in val_records]
    log.info("cached %d train / %d val photos in %.1fs", len(train_samples), len(val_samples),
             time.time() - t0)
    train_data = SaliencyBatches(train_samples, cfg, augment=True)
    val_data = SaliencyBatches(val_samples, cfg, augment=False)

    model = build_saliency_net(cfg.net)
    load_torchvision_weights(model, backbone)
    history: dict[str, list[float]] = {}

    def run(epochs: int, initial_epoch: int) -> None:
        h = model.fit(train_data, validation_data=val_data, epochs=initial_epoch + epochs,
                      initial_epoch=initial_epoch, verbose=verbose)
        for k, v in h.history.items():
            history.setdefault(k, []).extend(float(x) for x in v)

    frozen = min(cfg.epochs_frozen, cfg.epochs)
    if frozen:
        set_backbone_trainable(model, False)
        _compile(model, cfg.lr_decoder, cfg)
        run(frozen, 0)
    if cfg.epochs > frozen:
        set_backbone_trainable(model, True)
        steps = (cfg.epochs - frozen) * len(train_data)
        _compile(model, keras.optimizers.schedules.CosineDecay(
            cfg.lr_finetune, decay_steps=steps, alpha=0.05, warmup_target=None), cfg)
        run(cfg.epochs - frozen, frozen)

    model.save_weights(out_dir / "saliency.weights.h5")
    (out_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    (out_dir / "history.json").write_text(json.dumps(history, indent=2))
    log.info("saved %s in %.1f min", out_dir, (time.time() - t0) / 60)
    return history


def assign_folds(records: list[FixationRecord], folds: int) -> list[int]:
    """The cross-fitting fold of each training record (interleaved, so each fold mixes both sets)."""
    return [i % folds for i in range(len(records))]


def fold_assignment(data_root: Path, sets: tuple[str, ...] = TrainConfig.sets, folds: int = 2) -> dict[tuple[str, str], int]:
    """(dataset, photo name) -> cross-fitting fold of every training photo, as `train` splits them."""
    split = load_saliency_sets(data_root, sets)
    records = [r for name in sets for r in split[name][0]]
    return {(r.dataset, r.name): k for r, k in zip(records, assign_folds(records, folds))}


def net_config(run_dir: Path) -> SaliencyNetConfig:
    """The architecture a run folder's weights belong to."""
    cfg = json.loads((run_dir / "config.json").read_text())
    return SaliencyNetConfig(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in cfg["net"].items()})


def load_trained(run_dir: Path) -> keras.Model:
    """Rebuild the (training) network from a run folder's config and load its weights."""
    model = build_saliency_net(net_config(run_dir))
    model.load_weights(run_dir / "saliency.weights.h5")
    return model


def teacher_arg(text: str) -> tuple[str, float]:
    """"model.tflite:0.3" -> (path, 0.3); a bare path weighs 1."""
    path, sep, weight = text.rpartition(":")
    try:
        return (path, float(weight)) if sep else (text, 1.0)
    except ValueError:
        return text, 1.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--backbone", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--out", type=Path, default=Path("runs/saliency"))
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--epochs-frozen", type=int, default=TrainConfig.epochs_frozen)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr_finetune)
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=1, help="cross-fitting: number of folds")
    parser.add_argument("--fold", type=int, default=0, help="cross-fitting: the fold held out")
    parser.add_argument("--sets", default=",".join(TrainConfig.sets),
                        help="training sets, comma-separated (leave-one-dataset-out: one set)")
    parser.add_argument("--per-dataset-priors", action="store_true",
                        help="one learned prior per training set (UNISAL); default: one shared prior, "
                             "the shipped model's recipe")
    parser.add_argument("--teacher", action="append", default=[], metavar="MODEL.tflite[:WEIGHT]",
                        help="distillation: an exported model whose map (weight, default 1) joins "
                             "the teachers' ensemble; repeat for more")
    parser.add_argument("--distill", type=float, default=0.0,
                        help="share of the teachers' map in the training density target (0-1)")
    parser.add_argument("--teacher-flip", action="store_true",
                        help="distillation: the teachers' maps average the photo and its mirror image")
    parser.add_argument("--unlabelled", type=Path, default=None, metavar="DIR",
                        help="unlabelled photos (DIR/manifest.csv, e.g. ../shared/data/photos) the "
                             "student learns the teachers' maps on")
    parser.add_argument("--unlabelled-share", type=float, default=1.0,
                        help="share of the unlabelled photos used, drawn per source (0-1)")
    parser.add_argument("--emod", type=Path, default=None, metavar="DIR",
                        help="EMOd free-viewing maps (e.g. ../shared/data/saliency/emod_fdm) as a "
                             "maps-only training set")
    args = parser.parse_args(argv)
    check_emod_arg(parser, args.emod)
    if not 0 < args.unlabelled_share <= 1:
        parser.error("--unlabelled-share must be in (0, 1]")
    if args.unlabelled and not (args.teacher and args.distill > 0):
        parser.error("--unlabelled needs --teacher and --distill > 0")
    if args.per_dataset_priors and args.unlabelled:
        parser.error("--per-dataset-priors gives each set its own prior; unlabelled photos belong to "
                     "no set (their target is the teachers' map, prior included), so they train with "
                     "one shared prior only")
    if not 0 <= args.distill <= 1:
        parser.error("--distill must be in 0..1")
    if args.distill > 0 and not args.teacher:
        parser.error("--distill needs at least one --teacher")
    if not 0 <= args.fold < max(args.folds, 1):
        parser.error("--fold must be in 0..folds-1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sets = tuple(s for s in args.sets.split(",") if s)
    # EMOd, when given with per-dataset priors, is one more set with its own prior.
    priors = len(sets) + (1 if args.emod else 0) if args.per_dataset_priors else 1
    cfg = TrainConfig(sets=sets, epochs=args.epochs, epochs_frozen=args.epochs_frozen,
                      batch_size=args.batch_size, lr_finetune=args.lr,
                      max_images=args.max_images, seed=args.seed, folds=args.folds, fold=args.fold,
                      teachers=tuple(teacher_arg(t) for t in args.teacher), distill=args.distill,
                      teacher_flip=args.teacher_flip,
                      unlabelled=str(args.unlabelled) if args.unlabelled else None,
                      unlabelled_share=args.unlabelled_share,
                      emod=str(args.emod) if args.emod else None,
                      net=SaliencyNetConfig(priors=priors))
    log.info("backend=%s config=%s", keras.backend.backend(), cfg)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    train(cfg, args.data, args.out, args.backbone)


if __name__ == "__main__":
    main()
