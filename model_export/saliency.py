"""Export the trained saliency network to TFLite, measure, choose, ship with a model card.

    python -m model_export.saliency --run runs/saliency [--data ../shared/data]

For each recipe (float32, float16, full int8 with representative training photos) it
reports parity (CC between the float Keras map and the TFLite map on every validation
photo, at full photo size, as the runtime produces it), model size and LiteRT latency on one
thread. The chosen recipe is the fastest float one (float32/float16: the same map on x86_64
and arm64, which int8 is not) within the 10 ms budget, else the fastest of any, always among
those whose mean parity is >= 0.99 and whose file is at most 8 MB (ties: the smaller file). The chosen file goes to layers/autocrop/models/saliency.tflite with saliency.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import re
import shlex
import sys
from pathlib import Path

import numpy as np

from autocrop.preprocess import (CANVAS, IMAGENET_MEAN, IMAGENET_STD, OUTPUT_STRIDE, PAD_RGB,
                                 letterbox, unletterbox)
import keras

from autocrop.saliency import (DEFAULT_SALIENCY_MODEL, FEATURES_OUTPUT, SALIENCY_OUTPUT,
                               LiteRTSaliency, RuntimePrior, TFLiteModel, UnsupportedCardError,
                               check_ensemble_weights, load_members)

from training.cards import dump_card

from .quantize import RECIPES, convert, git_commit, latency_ms, pearson, write

log = logging.getLogger("model_export.saliency")
PARITY_BAR = 0.99
#: Largest model file we ship (the layer budget and cold starts both pay for bytes).
MAX_MODEL_BYTES = 8_000_000
#: Saliency inference budget on one thread at the shipped input size, ms.
LATENCY_BUDGET_MS = 10.0
#: Recipes whose arithmetic is float: their maps do not depend on the CPU. int8 kernels round
#: differently on Arm than on x86_64 (measured by infra.arm64_check: up to 7-8 quantisation
#: steps on ~14% of the map's cells, enough to move near-tied crops by a grid step), and the
#: functions run on arm64 while users' laptops and CI run x86_64: one photo must get one crop.
CPU_INDEPENDENT = ("float32", "float16")
#: The encoder layer whose output is shipped as `features` (stride 16, 96 channels).
FEATURES_LAYER = "features.13.add"


def representative_canvases(records, limit: int = 200):
    """Representative data for int8 calibration: letterboxed training photos."""
    def gen():
        for r in records[:limit]:
            canvas, _ = letterbox(r.load_rgb())
            yield [canvas[None]]
    return gen


def shipped_saliency_net(run_dir: Path, selection: dict | None) -> keras.Model:
    """The image-only net a run ships: its weights with the run-time prior map baked in.

    A frozen-encoder run (training.saliency_frozen) gets the ImageNet encoder back under its
    readout; a run with per-dataset priors gets the prior `selection` names (the mean learned
    map or a flat one, training.prior_select); a single-prior run ships as trained.
    """
    from training.prior_select import prior_map
    from training.saliency import load_trained, net_config
    from training.saliency_frozen import assemble
    from training.saliency_model import inference_net

    kind = (selection or {}).get("prior", "learned")
    if (run_dir / "readout.weights.h5").exists():
        return assemble(run_dir, prior_map(run_dir, kind))
    model = load_trained(run_dir)
    config = net_config(run_dir)
    if config.priors > 1:
        return inference_net(model, config, prior_map(run_dir, kind, model))
    return model


def architecture(train_cfg: dict) -> str:
    """The card's one-line description of the shipped net."""
    net = train_cfg.get("net", {})
    frozen = bool(train_cfg.get("frozen_encoder"))
    encoder = ("MobileNetV2 encoder, torchvision ImageNet weights kept frozen"
               + (" except the stride-32 blocks (fine-tuned)" if net.get("tune_top") else "")
               if frozen else "MobileNetV2 encoder (torchvision ImageNet init, fine-tuned)")
    return (f"{encoder}{' + its 1280-channel classifier conv' if net.get('deep_tap') else ''} + dilated "
            "multi-scale context (dilations 1,2,4 + image pooling) + U-Net decoder (strides 16, 8, 4) "
            + (f"+ one learned prior map per training set ({net.get('priors')}, UNISAL-style), replaced at "
               "export by the run-time prior" if net.get("priors", 1) > 1 else "+ learned prior map")
            + "; sigmoid output")


def shipped_prior(selection: dict | None) -> RuntimePrior:
    """The run-time prior a selection ships as; ValueError for a face channel, which the
    engine does not apply (`autocrop.saliency.RuntimePrior` refuses a card naming one)."""
    if not selection:
        return RuntimePrior()
    face_weight = float(selection.get("face_weight", 0.0))
    if face_weight != 0:
        raise ValueError(f"the prior selection has a face channel (face_weight {face_weight:g}), which the engine "
                         "does not apply: choose a candidate without one (training.prior_select's `chosen` is)")  # fmt: skip
    return RuntimePrior(float(selection.get("centre_exponent", 0.0)))


def runtime_prior(selection: dict | None) -> dict:
    """The card's `runtime_prior`: what autocrop.saliency.RuntimePrior applies, and why."""
    shipped_prior(selection)  # a face channel cannot ship
    if not selection:
        return {"centre_exponent": 0.0, "sigma_frac": 0.25, "prior_map": "learned",
                "chosen_by": "none: the net's own learned prior"}
    return {
        "centre_exponent": float(selection["centre_exponent"]),
        "sigma_frac": 0.25,
        "prior_map": selection.get("prior", "learned"),
        "chosen_by": "leave-one-dataset-out: readouts trained on OSIE alone / EyeCrowd alone predict "
                     "the other set's training photos; best mean CC (training.prior_select); the "
                     "MIT1003 sample never enters the choice",
        # The table's words live in the prior file the export read (the card stays under 10 KB).
        "lodo_table": selection.get("source") or selection.get("lodo_table"),
    }


#: The shipped model as the commands name it (from the repository root).
SHIPPED_MODEL_ARG = "layers/autocrop/models/saliency.tflite"
#: Where EMOd is read from when a run's config names the set but not the folder.
EMOD_DIR = "../shared/data/saliency/emod_fdm"


def commands(run_dir: Path, train_cfg: dict, selection: dict | None,
             members: tuple[tuple[Path, float], ...] = (), recipe: str | None = None) -> list[str]:
    """The commands that rebuild this model, in order (every path shell-quoted)."""
    q = lambda value: shlex.quote(str(value))  # noqa: E731
    net = train_cfg.get("net", {})
    run = q(run_dir)
    if train_cfg.get("frozen_encoder"):
        flags = "".join(f" --{k.replace('_', '-')}" for k in ("deep_tap", "tune_top") if net.get(k))
        sets = list(train_cfg.get("sets") or ())
        final = (f" --sets {q(','.join(sets))}" + (f" --emod {q(EMOD_DIR)}" if "emod" in sets else "")
                 if sets and sets != ["osie", "eyecrowd"] else "")
        out = [f"python -m training.saliency_frozen --sets {s} --out runs/lodo_{s}{flags} --epochs 12"
               for s in ("osie", "eyecrowd")]
        out += ["python -m training.prior_select --osie-run runs/lodo_osie --eyecrowd-run "
                "runs/lodo_eyecrowd --json runs/prior.json",
                f"python -m training.saliency_frozen --out {run}{flags}{final} --epochs {train_cfg.get('epochs')}"]
    elif train_cfg.get("teachers") and train_cfg.get("distill"):
        # The teachers are exported models; each one's card lists the commands that built it.
        teach = "".join(f" --teacher {q(f'{path}:{weight:g}')}" for path, weight in train_cfg["teachers"])
        teach += " --teacher-flip" if train_cfg.get("teacher_flip") else ""
        extra = f" --epochs {train_cfg.get('epochs')} --epochs-frozen {train_cfg.get('epochs_frozen')}"
        if train_cfg.get("unlabelled"):
            extra += f" --unlabelled {q(train_cfg['unlabelled'])}"
            if train_cfg.get("unlabelled_share", 1.0) < 1:
                extra += f" --unlabelled-share {train_cfg['unlabelled_share']:g}"
        if train_cfg.get("emod"):
            extra += f" --emod {q(train_cfg['emod'])}"
        out = [f"# teachers: {', '.join(path for path, _ in train_cfg['teachers'])} (their cards say how each was built)",
               f"python -m training.saliency --out {run}{teach} --distill {train_cfg['distill']:g}{extra}"]
    else:
        flags = " --per-dataset-priors" if net.get("priors", 1) > 1 else ""
        flags += f" --emod {q(train_cfg['emod'])}" if train_cfg.get("emod") else ""
        out = [f"python -m training.saliency --out {run}{flags}"]
    prior = f" --prior {q(selection['source'])}" if selection and selection.get("source") else ""
    prior += f" --recipe {recipe}" if recipe else ""
    prior += "".join(f" --member {q(f'{path}:{weight}')}" for path, weight in members)
    if members:
        out.append(f"# members: {', '.join(str(path) for path, _ in members)} (their cards say how each was built)")
    return out + [f"python -m model_export.saliency --run {run}{prior}",
                  f"python -m training.evaluate --model {SHIPPED_MODEL_ARG}",
                  "python -m training.ceiling --split-half-only"]


#: What a card says of each extra data source a run learned from (training.saliency's
#: `--emod` and `--unlabelled`), with its terms: the weights are the project's, and the card
#: says what they were trained on.
DATA_TERMS = (
    ("emod", "; EMOd free-viewing maps (task-based eye-fixation dataset, MIT licence for the fixation data; "
             "EMOd photos: research use)"),
    ("unlabelled", "; unlabelled photos (BSDS500: research use; SUN / Urban100 scenes: as their sources state; "
                   "ImageNet samples: non-commercial research and education) seen only through the teachers' maps"),
)


def learned_from(train_cfg: dict, key: str) -> bool:
    """Whether a run's weights learned from the extra source `key` (a DATA_TERMS key):
    training.saliency names it by its own flag, training.saliency_frozen in `sets`."""
    return bool(train_cfg.get(key)) or key in (train_cfg.get("sets") or ())


def licence(train_cfg: dict) -> str:
    """The card's `licence`: the weights', the backbone's and every training set's terms."""
    return ("model weights: MIT (this project); backbone init: torchvision BSD-3-Clause; data: OSIE and EyeCrowd, MIT"
            + "".join(term for key, term in DATA_TERMS if learned_from(train_cfg, key)))


def training_data(train_cfg: dict, fixation_photos: int) -> str:
    """The card's `training.data`: every set the weights learned from and how."""
    text = ("OSIE (700 photos, 15 observers) + EyeCrowd (400 photos here, 16 observers), ground truth = "
            "fixations blurred with sigma 0.03 x max(w, h) (EVALUATION.md); the MIT1003 sample is "
            "out-of-domain validation only (never trained or tuned on)")
    if train_cfg.get("teachers") and train_cfg.get("distill"):
        text += (f"; targets blended {1 - train_cfg['distill']:g} people : {train_cfg['distill']:g} the teachers' map "
                 f"({', '.join(f'{Path(m).parent.name}/{Path(m).name} x {w:g}' for m, w in train_cfg['teachers'])}"
                 f"{', each also on the mirrored photo' if train_cfg.get('teacher_flip') else ''})")
    if learned_from(train_cfg, "emod"):
        text += "; EMOd free-viewing density maps (170 of 189 photos, 8 observers; maps only, so no NSS term)"
    if train_cfg.get("unlabelled"):
        share = train_cfg.get("unlabelled_share", 1.0)
        text += (f"; {'all' if share >= 1 else f'{share:g} of each source of'} the 1,680 unlabelled photos of "
                 "../shared/data/photos (BSDS500, SUN scenes, Urban100, one ImageNet photo per class), whose "
                 "whole target is the teachers' map (KL and CC only)")
    return text + f"; {fixation_photos} fixation photos trained on"


def choose_recipe(variants: dict[str, dict]) -> tuple[str, str]:
    """(recipe, the rule in words): the fastest float recipe within the latency budget, else the
    fastest of any; always among recipes with mean parity >= PARITY_BAR and size <= the cap."""
    eligible = [n for n, v in variants.items()
                if v["parity_cc_mean"] >= PARITY_BAR and v["size_bytes"] <= MAX_MODEL_BYTES]
    if not eligible:
        raise RuntimeError(f"no recipe reached parity {PARITY_BAR}: {variants}")
    stable = [n for n in eligible if n in CPU_INDEPENDENT
              and variants[n]["latency_ms_1thread"]["median"] <= LATENCY_BUDGET_MS]
    chosen = min(stable or eligible, key=lambda n: (variants[n]["latency_ms_1thread"]["median"],
                                                    variants[n]["size_bytes"]))
    return chosen, (f"among recipes with mean parity >= {PARITY_BAR} and size <= "
                    f"{MAX_MODEL_BYTES / 1e6:.0f} MB: the fastest median LiteRT latency (1 thread) of "
                    f"the float recipes ({', '.join(CPU_INDEPENDENT)}: the same map on x86_64 and arm64) "
                    f"within {LATENCY_BUDGET_MS:g} ms, else the fastest of any; ties go to the smaller file")


def export(run_dir: Path, data_root: Path, out_dir: Path, models_dir: Path,
           recipes: tuple[str, ...] = ("float32", "float16", "int8"), val_limit: int | None = None,
           ship: bool = True, selection: dict | None = None, recipe: str | None = None,
           flip: bool = False, members: tuple[tuple[Path, float], ...] = ()) -> dict:
    """Convert every recipe, measure it, choose one and (optionally) ship it with its card.

    `recipe` names the one to ship instead of `choose_recipe`'s pick; it must still pass the
    parity bar and the size cap. It exists because the latency budget is measured on the
    machine that exports: a loaded 2-core machine times float16 over 10 ms one day and under
    it the next (8.8 ms on 2026-12-02, 12.3 ms on 2026-12-03 for the same network), and the
    shipped recipe should not flip to int8 (whose map differs on arm64) with the weather;
    benchmarks/bench_saliency.py compares recipes side by side in one run instead.

    `members` ((exported .tflite with its card, weight), ...) ship beside the model and are
    blended into its map (`autocrop.saliency.load_members`); this network's weight is 1 minus
    theirs. The card's figures and latency are measured on the blend, every pass counted."""
    from training.datasets import load_saliency_sets
    read_members(members)  # before any work: a member the engine would refuse stops the export here
    from training.evaluate import evaluate_centre, evaluate_predictor
    prior = shipped_prior(selection)  # before any work: a face channel cannot ship
    model = shipped_saliency_net(run_dir, selection)
    # One pass, two outputs: the saliency map and the stride-16 encoder features the crop
    # ranker pools from, so ranking costs no second backbone pass.
    shipped = keras.Model(model.input, {
        SALIENCY_OUTPUT: model.output,
        FEATURES_OUTPUT: model.get_layer(FEATURES_LAYER).output,
    }, name="autocrop_saliency_features")
    sets = load_saliency_sets(data_root)
    train = [r for s in sets.values() for r in s[0]]
    val = [r for s in sets.values() for r in s[1]]
    if val_limit:
        val = val[:val_limit]
    # Float reference maps, through the same letterbox/unletterbox as the runtime.
    inputs, refs = [], []
    for r in val:
        rgb = r.load_rgb()
        canvas, box = letterbox(rgb, CANVAS)
        raw = np.asarray(model(canvas[None], training=False))[0, ..., 0]
        inputs.append((canvas, box, rgb.shape[:2]))
        refs.append(prior.apply(unletterbox(raw, box, *rgb.shape[:2])))

    rng = np.random.default_rng(0)
    rep = representative_canvases([train[i] for i in rng.permutation(len(train))])
    variants = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in recipes:
        path = write(out_dir / f"saliency_{name}.tflite", convert(shipped, RECIPES[name], rep))
        runner = TFLiteModel(path, num_threads=1)
        parities = []
        for (canvas, box, (h, w)), ref in zip(inputs, refs):
            raw = runner(canvas[None])[SALIENCY_OUTPUT][0, ..., 0]
            parities.append(pearson(ref, prior.apply(unletterbox(raw, box, h, w))))
        x = inputs[0][0][None]
        variants[name] = {
            "file": path.name,
            "size_bytes": path.stat().st_size,
            "parity_cc_mean": round(float(np.mean(parities)), 5),
            "parity_cc_min": round(float(np.min(parities)), 5),
            "latency_ms_1thread": latency_ms(lambda: runner(x)),
        }
        log.info("%s: %s", name, variants[name])

    chosen, rule = choose_recipe(variants)
    if recipe is not None:
        v = variants[recipe]
        if v["parity_cc_mean"] < PARITY_BAR or v["size_bytes"] > MAX_MODEL_BYTES:
            raise RuntimeError(f"--recipe {recipe} misses parity {PARITY_BAR} or the size cap: {v}")
        chosen, rule = recipe, (f"named by --recipe {recipe} (parity and size checked); choose_recipe's rule, measured "
                                f"on the exporting machine, would pick {chosen}")
    report = {"variants": variants, "chosen": chosen, "rule": rule}
    if not ship:
        return report

    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / DEFAULT_SALIENCY_MODEL.name
    target.write_bytes((out_dir / variants[chosen]["file"]).read_bytes())
    predictor = LiteRTSaliency(target, num_threads=1)
    predictor.prior = prior  # the card on disk is the old model's until written below
    predictor.flip = flip  # ... and so is its test_time_flip: this export's setting is measured
    ensemble = ship_members(members, models_dir)
    predictor.weight, predictor.members = load_members({"ensemble": ensemble}, target, 1)
    metrics = evaluate_predictor(data_root, lambda r: predictor.predict(r.load_rgb()))
    baseline = evaluate_centre(data_root)
    # EVALUATION.md's human level on the out-of-domain sample and the in-domain val sets.
    from training.ceiling import split_half
    halves = {name: split_half(data_root, name, saliency=predictor) for name in ("mit1003", "osie", "eyecrowd")}
    train_cfg = json.loads((run_dir / "config.json").read_text())
    frozen = bool(train_cfg.get("frozen_encoder"))
    history = json.loads((run_dir / "history.json").read_text())
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    card = {
        "name": f"autocrop-saliency-mnv2-{chosen}-{digest[:8]}",
        "file": target.name,
        "sha256": digest,
        "size_bytes": target.stat().st_size,
        "task": "saliency: probability that people fixate each pixel (free viewing)",
        "architecture": architecture(train_cfg),
        "input": {
            "shape": [1, CANVAS, CANVAS, 3], "dtype": "float32" if chosen != "int8" else "int8",
            "content": "RGB in [0, 255], photo resized without distortion so its long side is "
                       f"{CANVAS} px and centred on a square canvas padded with {list(PAD_RGB)}",
            "preprocessing_function": "autocrop.preprocess.letterbox",
        },
        "normalisation": {"inside_model": True, "formula": "(x / 255 - mean) / std",
                          "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        "outputs": {"saliency": {
            "shape": [1, CANVAS // OUTPUT_STRIDE, CANVAS // OUTPUT_STRIDE, 1],
            "stride": OUTPUT_STRIDE,
            "scale": "sigmoid in [0, 1] over the canvas; the runtime cuts out the photo "
                     "(autocrop.preprocess.unletterbox), resizes to the photo and divides by the max",
        }, "features": {
            "shape": [1, CANVAS // 16, CANVAS // 16, 96], "stride": 16,
            "meaning": f"MobileNetV2 {FEATURES_LAYER} activations ("
                       + ("ImageNet weights, frozen" if frozen else "fine-tuned encoder")
                       + ") over the whole canvas, for the crop ranker's RoIAlign pooling",
        }},
        "runtime_prior": runtime_prior(selection),
        "quantization": chosen,
        "training": {
            "data": training_data(train_cfg, len(train)),
            "split": "per set, images sorted by name, every 10th (index % 10 == 0) is validation "
                     "and never trained on: 70 OSIE + 40 EyeCrowd validation photos",
            "train_images": len(train),
            "config": train_cfg,
            "final_epoch": rounded({k: v[-1] for k, v in history.items()}),
        },
        "validation": rounded({"model": metrics, "centre_bias_baseline": baseline}),
        "split_half": rounded(halves),
        "export": report,
        "latency_ms_1thread": (variants[chosen]["latency_ms_1thread"] if not ensemble else
                               passes_latency(predictor, inputs[0][0][None])),
        "commands": commands(run_dir, train_cfg, selection, members, recipe),
        "commit": git_commit(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "licence": licence(train_cfg),
    }
    if flip:
        card["test_time_flip"] = True
    if ensemble:
        card["ensemble"] = ensemble
        card["licence"] += "; ensemble members: as each member's card states (`ensemble.members[].sets`)"
    target.with_suffix(".json").write_text(dump_card(card))
    report["card"] = card
    return report


def rounded(figures: object, places: int = 4) -> object:
    """`figures` with every float rounded (a card's figures, not a record of float noise)."""
    if isinstance(figures, dict):
        return {k: rounded(v, places) for k, v in figures.items()}
    if isinstance(figures, list | tuple):
        return [rounded(v, places) for v in figures]
    if isinstance(figures, np.ndarray) and figures.ndim == 0:
        return rounded(figures.item(), places)
    if isinstance(figures, bool | np.bool_):
        return bool(figures)
    if isinstance(figures, np.integer):
        return int(figures)
    if isinstance(figures, float | np.floating):  # NaN and inf: training.cards.dump_card writes null
        return round(float(figures), places)
    return figures


#: The files an export writes for its members (and the only ones it removes).
MEMBER_FILE = re.compile(r"saliency_member[1-9][0-9]*\.(tflite|json)", re.ASCII)


def read_members(members: tuple[tuple[Path, float], ...]) -> list[tuple[Path, float, bytes, dict]]:
    """Every member's bytes and card, checked, before anything is written: the weights as the
    engine will check them (`autocrop.saliency.check_ensemble_weights`, this network's share
    first), each card a JSON object naming no members of its own. ValueError otherwise."""
    if not members:
        return []
    try:
        check_ensemble_weights([1.0 - sum(w for _, w in members), *(w for _, w in members)])
    except UnsupportedCardError as e:
        raise ValueError(f"member weights must be positive and leave this network a positive share: {e}") from e
    staged = []
    for path, weight in members:
        card = json.loads(path.with_suffix(".json").read_text())
        if not isinstance(card, dict) or card.get("ensemble"):
            raise ValueError(f"{path} is an ensemble itself or has no card object; a member must be one network")
        try:  # the engine must load it and get a map of the photo's size from it
            probe = LiteRTSaliency(path, num_threads=1).predict(np.zeros((24, 32, 3), np.uint8))
        except Exception as e:  # noqa: BLE001 - whatever the runtime raises, the member is refused
            raise ValueError(f"{path} is not a saliency network the engine runs: {e!r}") from e
        if probe.shape != (24, 32) or not np.isfinite(probe).all():
            raise ValueError(f"{path} gives a map of shape {probe.shape}, not the photo's (24, 32)")
        staged.append((path, weight, path.read_bytes(), card))
    return staged


def ship_members(members: tuple[tuple[Path, float], ...], models_dir: Path) -> dict | None:
    """Copy each member (.tflite and its card) beside the shipped model; the card's `ensemble`.

    Everything is read and checked first (a refused member leaves the install as it was, and a
    member read from the models folder itself survives); then the member files an earlier
    export wrote (`MEMBER_FILE`) go, so the layer ships no stale network, and the new ones are
    written. The weights are written as given (rounding could break their sum)."""
    staged = read_members(members)
    for stale in models_dir.iterdir() if models_dir.is_dir() else ():
        if MEMBER_FILE.fullmatch(stale.name) and stale.is_file():
            stale.unlink()
    if not staged:
        return None
    entries = []
    for i, (path, weight, blob, card) in enumerate(staged, start=1):
        # What the member learned from, in this exporter's words (a card written before a data
        # term was known is corrected here, so the layer's cards name every set).
        train_cfg = card.get("training", {}).get("config", {})
        if "train_images" in card.get("training", {}):
            card["training"]["data"] = training_data(train_cfg, card["training"]["train_images"])
        card["licence"] = licence(train_cfg)
        # ... and its export command writes beside its run, not over the shipped model.
        card["commands"] = [f"{c} --models-dir {shlex.quote(str(path.parent))}"
                            if c.startswith("python -m model_export.saliency") and "--models-dir" not in c
                            else c.replace(f"--model {SHIPPED_MODEL_ARG}", f"--model {shlex.quote(str(path))}")
                            for c in card.get("commands", [])]  # fmt: skip
        target = models_dir / f"saliency_member{i}.tflite"
        target.write_bytes(blob)
        target.with_suffix(".json").write_text(dump_card(card))
        entries.append({"file": target.name, "weight": weight, "name": card.get("name", path.stem),
                        "sha256": hashlib.sha256(blob).hexdigest(), "source": str(path),
                        "sets": [*(train_cfg.get("sets") or ("osie", "eyecrowd")),
                                 *(k for k, _ in DATA_TERMS if learned_from(train_cfg, k)
                                   and k not in (train_cfg.get("sets") or ()))]})
    return {
        "weight": 1.0 - sum(w for _, w in members),
        "members": entries,
        "blend": "weighted sum of the [0, 1] maps (own priors), rescaled; features: this network's",
    }


def passes_latency(predictor: LiteRTSaliency, canvas: np.ndarray) -> dict[str, float]:
    """Median and p90 ms on one thread of every network pass one photo costs (flip included)."""
    runners = predictor.passes()
    mirrored = np.ascontiguousarray(canvas[:, :, ::-1])

    def run() -> None:
        for runner, flip in runners:
            runner(mirrored if flip else canvas)

    return latency_ms(run)


def refresh_card(model_path: Path, data_root: Path, experiments: Path | None = None) -> dict:
    """Re-measure the shipped model (validation sets, MIT1003 sample, split-half) into its card.

    Everything else on the card (training, export, commands) stays as the export wrote it.
    """
    from training.ceiling import split_half
    from training.evaluate import evaluate_centre, evaluate_predictor

    card_path = model_path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    predictor = LiteRTSaliency(model_path, num_threads=1)
    card["validation"] = rounded({
        "model": evaluate_predictor(data_root, lambda r: predictor.predict(r.load_rgb())),
        "centre_bias_baseline": evaluate_centre(data_root),
    })
    card["split_half"] = rounded({name: split_half(data_root, name, saliency=predictor)
                                  for name in ("mit1003", "osie", "eyecrowd")})
    card.setdefault("runtime_prior", runtime_prior(None))
    if experiments is not None:
        # The card holds the shipped model's figures; experiment records live in docs/ and
        # the card names where (it stays under 10 KB: tests/training/test_model_cards.py).
        card["experiments"] = str(experiments)
    card_path.write_text(dump_card(card))
    return card


def member_arg(text: str) -> tuple[Path, float]:
    """`--member PATH:WEIGHT`: an exported .tflite with its card beside it, 0 < WEIGHT < 1."""
    path, _, weight = text.rpartition(":")
    try:
        value = float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PATH:WEIGHT, got {text!r}") from None
    if not path or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected PATH:WEIGHT with 0 < WEIGHT < 1, got {text!r}")
    if not Path(path).is_file() or not Path(path).with_suffix(".json").is_file():
        raise argparse.ArgumentTypeError(f"{path} and its card {Path(path).with_suffix('.json')} must both exist")
    return Path(path), value


def main(argv: list[str] | None = None) -> None:
    from training.datasets import DEFAULT_DATA_ROOT

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/saliency"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--out", type=Path, default=None, help="where variants go (default: RUN/tflite)")
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_SALIENCY_MODEL.parent)
    parser.add_argument("--no-ship", action="store_true", help="measure only; do not replace the shipped model")
    parser.add_argument("--prior", type=Path, default=None,
                        help="training.prior_select --json output: the run-time prior and its LODO table")
    parser.add_argument("--test-time-flip", action="store_true",
                        help="the card turns test-time flipping on (two passes: the photo and its mirror "
                             "image); the figures are measured that way")
    parser.add_argument("--member", action="append", default=[], metavar="TFLITE:WEIGHT", type=member_arg,
                        help="an exported network (its card beside it) whose map is blended into the shipped one "
                             "with this weight; repeatable; the shipped network keeps 1 minus the members' weights")
    parser.add_argument("--recipe", choices=("float32", "float16", "int8"), default=None,
                        help="ship this recipe instead of the rule's pick (parity and size still checked)")
    parser.add_argument("--val-limit", type=int, default=None, help="parity on the first N photos (smoke tests)")
    parser.add_argument("--refresh-card", action="store_true",
                        help="only re-measure the shipped model's figures into its card (no export)")
    parser.add_argument("--experiments", type=Path, default=None,
                        help="with --refresh-card: the JSON (under docs/) holding the experiments, named in the card")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.refresh_card:
        card = refresh_card(args.models_dir / DEFAULT_SALIENCY_MODEL.name, args.data, args.experiments)
        print(json.dumps({"validation": card["validation"]["model"], "split_half": card["split_half"]}, indent=1))
        return
    selection = None
    if args.prior is not None:
        chosen = json.loads(args.prior.read_text())
        selection = {**chosen["chosen"], "lodo_table": chosen["table"], "source": str(args.prior)}
    report = export(args.run, args.data, args.out or args.run / "tflite", args.models_dir,
                    ship=not args.no_ship, selection=selection, val_limit=args.val_limit,
                    recipe=args.recipe, flip=args.test_time_flip, members=tuple(args.member))
    print(f"{'recipe':<8} {'size MB':>8} {'parity mean':>12} {'parity min':>11} {'ms (1 thr)':>11}")
    for name, v in report["variants"].items():
        print(f"{name:<8} {v['size_bytes'] / 1e6:>8.2f} {v['parity_cc_mean']:>12.4f} "
              f"{v['parity_cc_min']:>11.4f} {v['latency_ms_1thread']['median']:>11.2f}")
    print(f"chosen: {report['chosen']} ({report['rule']})")
    if "card" in report:
        print(json.dumps(report["card"]["validation"], indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
