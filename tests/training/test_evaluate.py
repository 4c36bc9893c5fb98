"""`python -m training.evaluate` on the real validation split, with a tiny real TFLite model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.shared_data import DATA, needs_data
from training.evaluate import main

REPO = Path(__file__).resolve().parents[2]
pytestmark = needs_data


def centre_logits(canvas: int = 256, stride: int = 4) -> np.ndarray:
    """Logits of a 4:3 photo's centre bias, placed where the letterbox puts it in the output."""
    size = canvas // stride
    content_h = size * 3 // 4  # 4:3 content is 64 x 48 output pixels, centred vertically
    top = (size - content_h) / 2
    rows = np.arange(size, dtype=np.float64)[:, None]
    cols = np.arange(size, dtype=np.float64)[None, :]
    g = np.exp(
        -0.5
        * (
            ((cols - (size - 1) / 2) / (0.25 * size)) ** 2
            + ((rows - top - (content_h - 1) / 2) / (0.25 * content_h)) ** 2
        )
    )
    g = np.clip(g, 1e-6, 1 - 1e-6)
    return np.log(g / (1 - g)).astype(np.float32)[None, :, :, None]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Keras -> TFLite model, RGB (1,256,256,3) -> sigmoid (1,64,64,1): the centre bias.

    Its output ignores the pixels, so through letterbox -> model -> unletterbox it must score
    like the centre-bias baseline: that checks the whole model path of the evaluator.
    """
    import keras
    import tensorflow as tf
    from keras import layers

    logits = centre_logits()
    inp = keras.Input((256, 256, 3), batch_size=1)
    x = layers.AveragePooling2D(4)(inp)
    x = layers.Conv2D(1, 1, kernel_initializer="zeros", bias_initializer="zeros")(x)
    x = layers.Lambda(lambda t: t + logits)(x)
    out = layers.Activation("sigmoid")(x)
    model = keras.Model(inp, out)
    tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    path = tmp_path_factory.mktemp("model") / "tiny.tflite"
    path.write_bytes(tflite)
    return path


def test_model_path_scores_like_the_centre_bias(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "result.json"
    assert main(["--model", str(tiny_model), "--data", str(DATA), "--json", str(out)]) == 0
    table = capsys.readouterr().out
    print(table)
    for label in ("OSIE val", "EyeCrowd val", "combined", "model CC", "centre AUC-Judd", "CC gain"):
        assert label in table
    result = json.loads(out.read_text())
    assert result["model"]["osie"]["n"] == 70 and result["model"]["eyecrowd"]["n"] == 40
    assert result["model"]["combined"]["n"] == 110
    for key in ("osie", "eyecrowd", "combined"):
        for metric in ("cc", "nss", "auc_judd"):
            assert result["model"][key][metric] == pytest.approx(
                result["baseline"][key][metric], abs=0.01
            )
        gain = result["model"][key]["cc"] - result["baseline"][key]["cc"]
        assert result["cc_gain"][key] == pytest.approx(gain)


def test_baseline_only_cli(tmp_path: Path) -> None:
    out = tmp_path / "baseline.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.evaluate",
            "--baseline-only",
            "--data",
            str(DATA),
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "OSIE val" in proc.stdout and "model CC" not in proc.stdout
    assert "centre bias" in proc.stderr  # tqdm progress on stderr, not in the table
    result = json.loads(out.read_text())
    assert "model" not in result
    assert result["baseline"]["osie"]["cc"] == pytest.approx(0.2838, abs=0.002)
    assert result["baseline"]["eyecrowd"]["cc"] == pytest.approx(0.4448, abs=0.002)


def test_missing_model_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--model", str(tmp_path / "nope.tflite"), "--data", str(DATA)])
    assert exc.value.code == 2


def test_ensemble_and_flip_score_the_teachers_map(tiny_model: Path, tmp_path: Path) -> None:
    # The centre-bias model is mirror-symmetric and ignores the pixels: an ensemble of it,
    # flipped, must still score as the centre bias, through the distillation teacher's path.
    out = tmp_path / "ens.json"
    assert main(["--model", str(tiny_model), "--data", str(DATA), "--json", str(out),
                 "--ensemble", f"{tiny_model}:0.7", "--ensemble", f"{tiny_model}:0.3", "--flip"]) == 0
    result = json.loads(out.read_text())
    assert result["model_name"] == "flipped 0.7 x tiny.tflite + 0.3 x tiny.tflite"
    for key in ("osie", "eyecrowd", "combined"):
        assert result["model"][key]["cc"] == pytest.approx(result["baseline"][key]["cc"], abs=0.01)


def test_emod_row_scores_the_held_out_maps_with_cc_only(tmp_path: Path, capsys) -> None:
    """`--emod` adds EMOd's 19 held-out photos: the shipped model beats the centre bias there
    (docs/saliency.md: 0.562), and the table shows no NSS or AUC-Judd, which need points."""
    from autocrop.saliency import DEFAULT_SALIENCY_MODEL

    out = tmp_path / "emod.json"
    assert main(["--model", str(DEFAULT_SALIENCY_MODEL), "--emod", str(DATA / "saliency" / "emod_fdm"),
                 "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    model, centre = results["model"]["emod"], results["baseline"]["emod"]
    assert model["n"] == centre["n"] == 19 and set(model) == {"n", "cc"}
    assert model["cc"] == pytest.approx(0.562, abs=0.01)
    assert centre["cc"] < model["cc"]
    assert results["cc_gain"]["emod"] == pytest.approx(model["cc"] - centre["cc"])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("EMOd"))
    assert row.split()[-8:-1].count("-") == 4  # NSS and AUC-Judd, model and centre
