"""Saliency stage: where people will look, as a float32 map in [0, 1] at the input's size.

The shipped model is two MobileNetV2 encoder-decoders trained on human fixations (OSIE and
EyeCrowd) and free-viewing maps (EMOd), run with LiteRT, their maps blended as the main card's
`ensemble` says (`load_members`). A model-free centre-bias prior is the labelled fallback, used
when a model file is missing or LiteRT cannot load it; results name which ones ran.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .preprocess import CANVAS, Letterbox, letterbox, normalise_map, unletterbox
from .threads import default_threads

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_SALIENCY_MODEL = MODELS_DIR / "saliency.tflite"
#: Output names in the shipped model's signature.
SALIENCY_OUTPUT = "saliency"
#: Stride-16 encoder features of the same pass (for the learned crop ranker).
FEATURES_OUTPUT = "features"


class UnsupportedCardError(Exception):
    """A model card asks for something the engine does not do. Not a missing or unreadable
    model (which falls back to the centre prior, labelled): a wrong install, said at load."""


@dataclass(frozen=True)
class SaliencyOutput:
    """One saliency pass: the map at the image's size and, when the model has them, features.

    `features` is (S/16, S/16, C) over the whole letterboxed canvas; `letterbox` says where
    the photo sits in it (canvas pixels), so callers can map boxes into feature space.
    """

    saliency: np.ndarray
    features: np.ndarray | None
    letterbox: Letterbox | None


class SaliencyPredictor(Protocol):
    """Anything that maps an RGB uint8 image to a saliency map of the same height and width."""

    name: str

    def predict(self, rgb: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class SaliencyWithFeatures(SaliencyPredictor, Protocol):
    """A predictor whose one pass also gives the backbone's features (the learned ranker's
    input): the engine calls `predict_with_features` instead of `predict`."""

    def predict_with_features(self, rgb: np.ndarray) -> SaliencyOutput: ...


def centre_bias(height: int, width: int, sigma_frac: float = 0.25) -> np.ndarray:
    """Gaussian centred on the image, sigma = `sigma_frac` x width/height (EVALUATION.md)."""
    ys = (np.arange(height, dtype=np.float32) - (height - 1) / 2) / (sigma_frac * height)
    xs = (np.arange(width, dtype=np.float32) - (width - 1) / 2) / (sigma_frac * width)
    return np.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2)).astype(np.float32)


@dataclass(frozen=True)
class RuntimePrior:
    """What the run-time adds to the network's content map: a centre bias.

    How strongly people look at the centre depends on how a set of photos was taken and
    shown, not on content, so the network learns content with one prior per training set and
    the prior for photos in general is chosen apart, by leave-one-dataset-out validation
    (training.prior_select), and written into the model card (`runtime_prior`): the content
    map times a centre Gaussian to `centre_exponent` (0: none).

    The selection also measures a face channel (faces as blobs added to the map); no shipped
    card has one, so the engine has none: a card whose `runtime_prior.face_weight` is not 0
    is refused (`UnsupportedCardError`) rather than cropped without the channel it names.
    """

    centre_exponent: float = 0.0
    sigma_frac: float = 0.25

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> RuntimePrior:
        spec = card.get("runtime_prior") or {}
        if not isinstance(spec, dict):
            raise UnsupportedCardError(f"the saliency card's runtime_prior is not an object: {spec!r}")
        face_weight = float(spec.get("face_weight", 0.0))
        if face_weight != 0:
            raise UnsupportedCardError(
                f"the saliency card's runtime_prior.face_weight is {face_weight:g}: the engine applies no face "
                "channel (only centre_exponent and sigma_frac); export the model with a prior of face_weight 0"
            )
        return cls(float(spec.get("centre_exponent", 0.0)), float(spec.get("sigma_frac", 0.25)))

    def apply(self, saliency: np.ndarray) -> np.ndarray:
        """`saliency` (HxW, >= 0) weighted by the centre prior, scaled to [0, 1]."""
        if self.centre_exponent == 0:
            return normalise_map(saliency)
        h, w = saliency.shape
        return normalise_map(saliency * _centre_weight(h, w, self.sigma_frac, self.centre_exponent))


@lru_cache(maxsize=8)
def _centre_weight(height: int, width: int, sigma_frac: float, exponent: float) -> np.ndarray:
    """centre_bias ** exponent, read-only and cached: photos of one size share it."""
    weight = centre_bias(height, width, sigma_frac) ** exponent
    weight.flags.writeable = False
    return weight


@dataclass
class CentreBiasSaliency:
    """Model-free fallback: the centre-bias prior people show when viewing photos."""

    name: str = "centre-bias-fallback"

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        return centre_bias(rgb.shape[0], rgb.shape[1])

    def predict_with_features(self, rgb: np.ndarray) -> SaliencyOutput:
        return SaliencyOutput(saliency=self.predict(rgb), features=None, letterbox=None)


class TFLiteModel:
    """A LiteRT interpreter behind a lock (interpreters are not thread-safe).

    Quantized inputs/outputs are (de)quantized with the scale and zero point stored in the
    model, never with constants.
    """

    def __init__(self, path: Path | str, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        from .litert import litert_banner_filtered

        self.path = Path(path)
        with litert_banner_filtered():  # allocating prints LiteRT's banner
            self._interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
            self._interpreter.allocate_tensors()
        self._runner = self._interpreter.get_signature_runner()
        details = self._runner.get_input_details()
        self._input_name, self._input = next(iter(details.items()))
        self._outputs = self._runner.get_output_details()
        self._lock = threading.Lock()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self._input["shape"])

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch; float32 in, float32 out (whatever the model's storage type)."""
        x = _quantize(x, self._input)
        with self._lock:
            raw = self._runner(**{self._input_name: x})
        return {k: _dequantize(v, self._outputs[k]) for k, v in raw.items()}


def _quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.float32:
        return x.astype(np.float32, copy=False)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return y
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale


class LiteRTSaliency:
    """The trained saliency network, run with LiteRT on a letterboxed canvas."""

    def __init__(self, path: Path | str = DEFAULT_SALIENCY_MODEL, num_threads: int = 1):
        self.model = TFLiteModel(path, num_threads=num_threads)
        card_path = Path(path).with_suffix(".json")
        self.card: dict[str, Any] = json.loads(card_path.read_text()) if card_path.exists() else {}
        if not isinstance(self.card, dict):
            raise UnsupportedCardError(f"{card_path} is not a JSON object")
        self.canvas = self.model.input_shape[1]
        self.name = self.card.get("name", Path(path).stem)
        self.prior = RuntimePrior.from_card(self.card)
        #: Test-time flipping (the card's `test_time_flip`): the mirrored canvas runs too and
        #: the map is the mean of both, mirrored back; people look at a scene and its mirror
        #: image alike, so the mean cancels some of the network's left/right noise. Twice
        #: the passes; the encoder features (the learned ranker's) stay the first pass's.
        self.flip = self.card.get("test_time_flip", False)
        if not isinstance(self.flip, bool):  # "false" is a truthy string: refuse, do not guess
            raise UnsupportedCardError(f"{card_path}: test_time_flip must be true or false, not {self.flip!r}")
        #: Other networks whose maps are blended in (the card's `ensemble`); see `load_members`.
        self.weight, self.members = load_members(self.card, Path(path), num_threads)
        if self.members:
            self.name = "+".join([self.name, *(m.name for m, _ in self.members)])

    def run_canvas(self, canvas: np.ndarray) -> dict[str, np.ndarray]:
        """Every model output for a batch of letterboxed canvases (N, S, S, 3)."""
        return self.model(canvas)

    def predict_canvas(self, canvas: np.ndarray) -> np.ndarray:
        """Raw saliency for a batch of letterboxed canvases, (N, S/4, S/4)."""
        out = self.run_canvas(canvas)
        return out.get(SALIENCY_OUTPUT, next(iter(out.values())))[..., 0]

    def passes(self) -> list[tuple[TFLiteModel, bool]]:
        """Every network pass one photo costs, in order: (interpreter, on the mirrored canvas?).
        What the benchmarks and the export time (members and their flips included)."""
        own = [(self.model, False)] + ([(self.model, True)] if self.flip else [])
        return own + [p for member, _ in self.members for p in member.passes()]

    def _map(
        self, canvas: np.ndarray, box: Letterbox, height: int, width: int
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """This network's map of one letterboxed canvas at the photo's size, in [0, 1] with its
        prior (and flip), and the pass's outputs."""
        out = self.run_canvas(canvas[None])
        raw = out.get(SALIENCY_OUTPUT, next(iter(out.values())))[0, ..., 0]
        if self.flip:
            mirrored = self.run_canvas(np.ascontiguousarray(canvas[None, :, ::-1]))
            again = mirrored.get(SALIENCY_OUTPUT, next(iter(mirrored.values())))[0, ..., 0]
            raw = 0.5 * (raw + again[:, ::-1])
        return self.prior.apply(unletterbox(raw, box, height, width)), out

    def predict_with_features(self, rgb: np.ndarray) -> SaliencyOutput:
        """Saliency at the image's size plus the encoder features of the same pass."""
        height, width = rgb.shape[:2]
        canvases = {self.canvas: letterbox(rgb, self.canvas)}  # one letterbox per canvas size
        saliency, out = self._map(*canvases[self.canvas], height, width)
        if self.members:
            # Each map is in [0, 1] with its own run-time prior; the blend is scaled back to [0, 1].
            blend = self.weight * saliency
            for member, weight in self.members:
                if member.canvas not in canvases:
                    canvases[member.canvas] = letterbox(rgb, member.canvas)
                blend += weight * member._map(*canvases[member.canvas], height, width)[0]
            saliency = normalise_map(blend)
        features = out[FEATURES_OUTPUT][0] if FEATURES_OUTPUT in out else None
        return SaliencyOutput(saliency=saliency, features=features, letterbox=canvases[self.canvas][1])

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """The map for `rgb` (the engine calls `predict_with_features`, the same pass)."""
        return self.predict_with_features(rgb).saliency


def load_members(
    card: dict[str, Any], path: Path, num_threads: int
) -> tuple[float, tuple[tuple[LiteRTSaliency, float], ...]]:
    """(the card's own weight, ((member, weight), ...)) from the card's `ensemble`, if any.

    Two networks trained apart err in different places, so the weighted mean of their maps is
    closer to where people look than either (docs/saliency.md): the shipped card may name
    member networks, each a .tflite beside it with its own card (its own run-time prior and
    flip), and the weight of each. Members give maps only; the encoder features (the learned
    ranker's) stay this network's. The card is checked here, at load: weights positive and
    summing to 1, a member whose bytes match the card's sha256 and that names no members
    itself. A member file that is missing or unreadable raises OSError or ValueError, so
    `load_saliency` falls back to the labelled centre prior as for a missing main model; a card
    that asks for what the engine does not do raises UnsupportedCardError.
    """
    spec = card.get("ensemble")
    if not spec:
        return 1.0, ()
    try:
        own = spec["weight"]
        entries = [(m["file"], m["weight"], m.get("sha256")) for m in spec["members"]]
    except (KeyError, TypeError, AttributeError) as e:
        raise UnsupportedCardError(f"the saliency card's ensemble is malformed ({e!r}): {spec!r}") from e
    check_ensemble_weights([own, *(w for _, w, _ in entries)])
    members = []
    for file, weight, digest in entries:
        if not isinstance(file, str) or file in ("", ".", "..") or Path(file).name != file:
            raise UnsupportedCardError(f"an ensemble member must be a file name beside the model: {file!r}")
        if not (digest is None or isinstance(digest, str)):
            raise UnsupportedCardError(f"ensemble member {file}: sha256 must be a string: {digest!r}")
        member_path = path.parent / file
        blob = member_path.read_bytes()  # OSError when missing: the labelled fallback
        if os.path.samefile(member_path, path):  # a symlink or hard link to this very network
            raise UnsupportedCardError(f"an ensemble member must be another network than the model: {file!r}")
        if digest is not None and hashlib.sha256(blob).hexdigest() != digest.lower():
            raise ValueError(f"ensemble member {member_path} does not match its sha256 in {path.with_suffix('.json')}")
        member_card = member_path.with_suffix(".json")
        if member_card.exists():
            parsed = json.loads(member_card.read_text())  # not JSON: ValueError, the labelled fallback
            if not isinstance(parsed, dict):
                raise UnsupportedCardError(f"ensemble member {file}'s card is not a JSON object")
            if parsed.get("ensemble"):
                # refused before loading: a member naming its parent would otherwise recurse
                raise UnsupportedCardError(f"ensemble member {file} names members of its own")
        members.append((LiteRTSaliency(member_path, num_threads=num_threads), float(weight)))
    return float(own), tuple(members)


def check_ensemble_weights(weights: list[Any]) -> None:
    """An ensemble's weights (this network's first): JSON numbers, each positive, summing to 1
    within 1e-6. UnsupportedCardError otherwise. model_export.saliency checks with this too,
    before it writes anything."""
    if len(weights) < 2 or not all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights):
        raise UnsupportedCardError(
            f"the saliency card's ensemble weights must be numbers, one per network: {weights!r}"
        )
    if not all(np.isfinite(w) and w > 0 for w in weights) or abs(sum(weights) - 1) > 1e-6:
        raise UnsupportedCardError(f"the saliency card's ensemble weights must be positive and sum to 1: {weights}")


@lru_cache(maxsize=4)
def load_saliency(path: str | None = None, num_threads: int | None = None) -> SaliencyPredictor:
    """The process-wide saliency predictor: the shipped model, or the labelled fallback.

    `num_threads` None: `threads.default_threads()` (the cores, or AUTOCROP_THREADS)."""
    model_path = Path(path) if path else DEFAULT_SALIENCY_MODEL
    try:
        return LiteRTSaliency(model_path, num_threads=num_threads or default_threads())
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        log.warning("saliency model unavailable (%s); using the centre-bias fallback", e)
        return CentreBiasSaliency()


__all__ = [
    "CANVAS",
    "CentreBiasSaliency",
    "RuntimePrior",
    "LiteRTSaliency",
    "SaliencyOutput",
    "SaliencyPredictor",
    "SaliencyWithFeatures",
    "UnsupportedCardError",
    "TFLiteModel",
    "centre_bias",
    "load_saliency",
]
