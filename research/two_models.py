"""Two saliency models at run time, before one ships as an ensemble: the weighted mean of two maps.

    python -m research.two_models SECOND.tflite [--first FIRST.tflite] [--weight 0.5] [--json out.json]

Each model's map (its card's prior, flipping and members applied) is scaled to peak 1 and the
two are averaged (`--weight`: the first model's share; the first is the shipped model unless
`--first` names another); the engine crops with that map: validation and MIT1003 crops as
`training.crop_eval` scores them, and the MIT1003 split-half of `training.ceiling`. It picks
an ensemble's weights on the validation rows before `model_export.saliency --member` ships it
(the engine's blend is the same map up to its scale): docs/saliency.md ("Two networks, blended").
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autocrop import CropOptions
from autocrop.saliency import DEFAULT_SALIENCY_MODEL, LiteRTSaliency, SaliencyOutput, SaliencyPredictor
from training.ceiling import format_split_half, split_half
from training.crop_eval import RATIOS, _engine_with, evaluate, format_table, summarise
from training.datasets import DEFAULT_DATA_ROOT, load_eyecrowd_faces, load_saliency_sets


class MeanOfTwo:
    """`weight` x the first model's map + (1 - weight) x the second's, each scaled to peak 1;
    the first model's features (for the opt-in learned ranker) and letterbox."""

    name = "mean-of-two"

    def __init__(self, first: SaliencyPredictor, second: SaliencyPredictor, weight: float = 0.5):
        self.first, self.second, self.weight = first, second, weight

    def predict_with_features(self, rgb: np.ndarray) -> SaliencyOutput:
        a, b = self.first.predict_with_features(rgb), self.second.predict_with_features(rgb)
        mean = (self.weight * a.saliency / max(float(a.saliency.max()), 1e-12)
                + (1 - self.weight) * b.saliency / max(float(b.saliency.max()), 1e-12))  # fmt: skip
        return SaliencyOutput(saliency=mean.astype(np.float32), features=a.features, letterbox=a.letterbox)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        return self.predict_with_features(rgb).saliency


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the second model (.tflite beside its card)")
    parser.add_argument("--first", type=Path, default=DEFAULT_SALIENCY_MODEL, help="the first model (default: shipped)")
    parser.add_argument("--weight", type=float, default=0.5, help="the first model's share")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    model = MeanOfTwo(LiteRTSaliency(args.first, num_threads=1), LiteRTSaliency(args.model, num_threads=1),
                      args.weight)  # fmt: skip
    sets = load_saliency_sets(args.data, ("osie", "eyecrowd", "mit1003"))
    faces = load_eyecrowd_faces(Path(args.data) / "saliency" / "eyecrowd")
    records = [r for name in ("osie", "eyecrowd", "mit1003") for r in sets[name][1]]
    crops = summarise(evaluate(_engine_with(CropOptions(ratios=RATIOS), lambda record: model, None), records, faces))
    half = split_half(args.data, "mit1003", saliency=model)
    print(format_table({"engine": crops}))
    print(format_split_half({"mit1003": half}))
    if args.json:
        args.json.write_text(json.dumps({"crops": crops, "split_half": half}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
