"""Keras -> TFLite conversion with named quantization recipes (float32, float16, full int8).

Conversion always goes through `TFLiteConverter.from_keras_model` (or a SavedModel), never
`from_concrete_functions`, which silently gives wrong outputs with Keras 3 models.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def git_commit() -> str:
    """The checkout's commit (with "+dirty" when tracked files changed), for model cards."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@dataclass(frozen=True)
class QuantizationConfig:
    """How to quantize a model; build one with a named constructor."""

    name: str
    float16: bool = False
    int8: bool = False

    @classmethod
    def float32(cls) -> "QuantizationConfig":
        return cls("float32")

    @classmethod
    def float16_weights(cls) -> "QuantizationConfig":
        return cls("float16", float16=True)

    @classmethod
    def full_int8(cls) -> "QuantizationConfig":
        return cls("int8", int8=True)


RECIPES = {q.name: q for q in (QuantizationConfig.float32(), QuantizationConfig.float16_weights(),
                               QuantizationConfig.full_int8())}


def convert(model, quant: QuantizationConfig,
            representative: Callable[[], Iterable[list[np.ndarray]]] | None = None) -> bytes:
    """Convert a Keras model to TFLite flatbuffer bytes."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quant.float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    if quant.int8:
        if representative is None:
            raise ValueError("full int8 needs representative data")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation coefficient of two maps (the parity measure)."""
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def latency_ms(run: Callable[[], object], warmup: int = 5, repeats: int = 50) -> dict[str, float]:
    """Median and p90 wall time of `run()` in milliseconds."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"median": round(statistics.median(times), 2), "p90": round(times[int(0.9 * (len(times) - 1))], 2)}


def write(path: Path, flatbuffer: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(flatbuffer)
    return path
