"""Choose the run-time centre prior by leave-one-dataset-out validation, never on MIT1003.

    python -m training.prior_select --osie-run runs/lodo_osie --eyecrowd-run runs/lodo_eyecrowd \
        [--final runs/sal_frozen] [--json out.json]

The centre bias is a property of how a set of photos was taken and viewed (EVALUATION.md:
centre-bias CC 0.28 on OSIE, 0.45 on EyeCrowd), so a net that learns one prior on its
training sets carries their bias to every photo. The product needs a prior for photos in
general, i.e. for a data set it has never seen: so each candidate prior is scored the way
new photos meet it. A readout trained on OSIE alone predicts EyeCrowd's training photos, one
trained on EyeCrowd alone predicts OSIE's, and the candidate with the best mean CC over
both directions is chosen. Candidates: the net's own learned prior map or a flat one (its
mean), each times EVALUATION.md's centre Gaussian to a power (autocrop.saliency.RuntimePrior),
plus a face channel (YuNet's faces as blobs, `face_map`) at a weight. The face channel is
measured here only: the engine applies no face channel and refuses a card that names one, so
`choose` picks among the candidates without it (face weight 0), and the table keeps the rest.
The MIT1003 sample is printed for the chosen prior and never enters the choice.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autocrop import CropOptions
from autocrop.faces import detect_faces, load_face_detector
from autocrop.preprocess import letterbox_geometry, normalise_map, unletterbox
from autocrop.saliency import RuntimePrior

from .datasets import DEFAULT_DATA_ROOT
from .fixations import density_map
from .metrics import cc
from .saliency_frozen import content_logits, load_readout, load_taps, records_for, run_config
from .saliency_model import learned_prior_maps

#: Centre-Gaussian exponents tried (0 = none; 1 = EVALUATION.md's centre-bias map itself).
EXPONENTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
#: Face-channel weights tried (0 = none; 1 = a face as salient as the map's peak).
FACE_WEIGHTS = (0.0, 0.25, 0.5, 1.0)
PRIOR_MAPS = ("learned", "flat")


def face_map(faces: np.ndarray | None, height: int, width: int) -> np.ndarray:
    """Faces (N, 5: x, y, w, h, score in the map's pixels) as Gaussian blobs, peak = score.

    Each blob is centred on its face with sigma half the face's longer side; overlapping
    faces take the maximum, so a crowd does not add up to more than its best face.
    """
    out = np.zeros((height, width), np.float32)
    if faces is None or len(faces) == 0:
        return out
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    for x, y, w, h, score in np.asarray(faces, np.float32)[:, :5]:
        sigma = max(float(w), float(h), 1.0) / 2
        cx, cy = x + w / 2, y + h / 2
        # Only the rows/cols within 3 sigma: a crowd of small faces stays cheap.
        r0, r1 = max(0, int(cy - 3 * sigma)), min(height, int(cy + 3 * sigma) + 1)
        c0, c1 = max(0, int(cx - 3 * sigma)), min(width, int(cx + 3 * sigma) + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        blob = score * np.exp(-((ys[r0:r1] - cy) ** 2 + (xs[:, c0:c1] - cx) ** 2) / (2 * sigma * sigma))
        np.maximum(out[r0:r1, c0:c1], blob, out=out[r0:r1, c0:c1])
    return out


def with_face_map(saliency: np.ndarray, blobs: np.ndarray, face_weight: float) -> np.ndarray:
    """A [0, 1] map plus `face_weight` x the faces' blobs (`face_map`), scaled to [0, 1]."""
    if face_weight == 0 or not blobs.any():
        return saliency
    return normalise_map(saliency + face_weight * blobs)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def prior_map(run_dir: Path, kind: str, model=None) -> np.ndarray:
    """The run's prior logits for photos of no known set: the mean learned map, or its mean."""
    maps = learned_prior_maps(model if model is not None else load_readout(run_dir))
    mean = maps.mean(axis=0)
    return mean if kind == "learned" else np.full_like(mean, float(mean.mean()))


def candidate_name(kind: str, exponent: float, face_weight: float) -> str:
    return f"{kind}^{exponent:g}+faces*{face_weight:g}"


def parse_candidate(name: str) -> dict:
    kind, rest = name.split("^")
    k, alpha = rest.split("+faces*")
    return {"prior": kind, "centre_exponent": float(k), "face_weight": float(alpha)}


def is_full_run(run_dir: Path) -> bool:
    """A fine-tuned run of `training.saliency` (its whole net saved), not a frozen readout."""
    return (Path(run_dir) / "saliency.weights.h5").exists()


def full_net_logits(model, records: Sequence, batch: int = 16) -> np.ndarray:
    """(photos, S/4, S/4) content logits (before any prior) of a fine-tuned net on the photos."""
    import keras

    from autocrop.preprocess import letterbox

    head = keras.Model(model.inputs, model.get_layer("head").output)
    outs = []
    for s in range(0, len(records), batch):
        x = {"image": np.stack([letterbox(r.load_rgb())[0] for r in records[s : s + batch]])}
        if len(head.inputs) > 1:
            x["dataset"] = np.zeros((len(x["image"]), head.inputs[-1].shape[-1]), np.float32)
        outs.append(np.asarray(head.predict(x, verbose=0))[..., 0])
    return np.concatenate(outs)


def run_logits(run_dir: Path, data_root: Path, dataset: str, which: str, cache: Path | None,
               limit: int | None = None):
    """(content logits, records, the run's net) of one run on one set-part, frozen or fine-tuned
    (`limit`: the first photos only, fine-tuned runs)."""
    if is_full_run(run_dir):
        from .datasets import load_saliency_sets
        from .saliency import load_trained

        split = load_saliency_sets(data_root, (dataset,))[dataset]
        records = (split[0] if which == "train" else split[1])[:limit]
        model = load_trained(run_dir)
        return full_net_logits(model, records), records, model
    model = load_readout(run_dir)
    part = load_taps(cache, dataset, which, run_config(run_dir).net)
    return content_logits(model, part), records_for(data_root, part, which), model


def candidate_scores(run_dir: Path, data_root: Path, dataset: str, which: str, cache: Path | None,
                     exponents: Sequence[float] = EXPONENTS, kinds: Sequence[str] = PRIOR_MAPS,
                     face_weights: Sequence[float] = FACE_WEIGHTS, limit: int | None = None) -> dict[str, list[float]]:
    """{candidate: per-photo CC} of one run on one set-part, for every candidate."""
    logits, records, model = run_logits(run_dir, data_root, dataset, which, cache, limit)
    maps = {kind: prior_map(run_dir, kind, model) for kind in kinds}
    detector, options = load_face_detector(), CropOptions()
    out: dict[str, list[float]] = {}
    for record, z in zip(records, logits, strict=True):
        h, w = record.height, record.width
        density = density_map(record.fixations, h, w)
        box = letterbox_geometry(h, w)
        # The engine's face pass on the photo (these photos are at most 1024 px: analysis size).
        faces = detect_faces(record.load_rgb(), detector, options) if any(face_weights) else np.zeros((0, 5))
        blobs = face_map(faces, h, w)
        for kind, pmap in maps.items():
            base = unletterbox(_sigmoid(z + pmap), box, h, w)
            for k in exponents:
                centred = RuntimePrior(k).apply(base)
                for alpha in face_weights:
                    final = with_face_map(centred, blobs, alpha)
                    out.setdefault(candidate_name(kind, k, alpha), []).append(cc(final, density))
    return out


def _trained_sets(run_dir: Path) -> tuple[str, ...]:
    return tuple(json.loads((Path(run_dir) / "config.json").read_text())["sets"])


def lodo_table(osie_run: Path, eyecrowd_run: Path, cache: Path, data_root: Path) -> dict[str, dict[str, float]]:
    """{candidate: {'osie->eyecrowd', 'eyecrowd->osie', 'mean'}} on the held-out set's training photos."""
    cols = {}
    for run, target in ((osie_run, "eyecrowd"), (eyecrowd_run, "osie")):
        name = f"{_trained_sets(run)[0]}->{target}"
        cols[name] = {c: float(np.mean(v)) for c, v in candidate_scores(run, data_root, target, "train", cache).items()}
    table = {}
    for c in next(iter(cols.values())):
        row = {name: col[c] for name, col in cols.items()}
        row["mean"] = float(np.mean(list(row.values())))
        table[c] = row
    return table


def choose(table: dict[str, dict[str, float]]) -> dict:
    """The candidate with the best mean held-out-set CC among those the engine can apply (no
    face channel), as {prior, centre_exponent, face_weight}."""
    shippable = [c for c in table if parse_candidate(c)["face_weight"] == 0]
    return parse_candidate(max(shippable, key=lambda c: table[c]["mean"]))


def report(run_dir: Path, cache: Path, data_root: Path, chosen: dict) -> dict[str, float]:
    """Mean CC of a run with one run-time prior on each in-domain val set and the MIT1003 sample."""
    out = {}
    for name in ("osie", "eyecrowd", "mit1003"):
        scores = candidate_scores(run_dir, data_root, name, "val", cache, (chosen["centre_exponent"],),
                                  (chosen["prior"],), (chosen["face_weight"],))
        out[name] = float(np.mean(next(iter(scores.values()))))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--cache", type=Path, default=Path("runs/taps"))
    parser.add_argument("--osie-run", type=Path, required=True)
    parser.add_argument("--eyecrowd-run", type=Path, required=True)
    parser.add_argument("--final", type=Path, action="append", default=[],
                        help="runs on every set to report with the chosen prior (repeatable)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    table = lodo_table(args.osie_run, args.eyecrowd_run, args.cache, args.data)
    cols = list(next(iter(table.values())))
    print("| run-time prior | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for c, row in table.items():
        print(f"| {c} | " + " | ".join(f"{row[k]:.4f}" for k in cols) + " |")
    chosen = choose(table)
    print(f"chosen: {chosen['prior']} prior map x centre Gaussian ^ {chosen['centre_exponent']:g}"
          f" + faces x {chosen['face_weight']:g}")
    reports = {str(r): report(r, args.cache, args.data, chosen) for r in args.final}
    for r, row in reports.items():
        print(f"{r}: " + ", ".join(f"{n} CC {v:.4f}" for n, v in row.items()))
    if args.json:
        args.json.write_text(json.dumps({"table": table, "chosen": chosen, "reports": reports}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
