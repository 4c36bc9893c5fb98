"""Adversarial tests of the saliency ensemble (autocrop.saliency.load_members, the export's
member shipping, the benchmark's pass count).

Real LiteRT networks throughout: the shipped network and its shipped member, copied into a
temporary folder with hand-written cards (the style of tests/engine/test_saliency_ensemble.py),
and real photos (skimage.data) or plain numpy arrays. Nothing under test is mocked. Each test
names the promise it attacks; a test that fails names a defect.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from autocrop import CropOptions, analyse_image, decode
from autocrop.faces import NoFaceDetector
from autocrop.saliency import (DEFAULT_SALIENCY_MODEL, CentreBiasSaliency, LiteRTSaliency, UnsupportedCardError,
                               load_members, load_saliency)
from benchmarks.bench_saliency import passes
from model_export.saliency import commands, member_arg, rounded, ship_members
from tests.engine.test_saliency_ensemble import _install

MODELS = DEFAULT_SALIENCY_MODEL.parent
OTHER = MODELS / "saliency_member1.tflite"
SHIPPED_CARD = json.loads(DEFAULT_SALIENCY_MODEL.with_suffix(".json").read_text())
OTHER_CARD = json.loads(OTHER.with_suffix(".json").read_text())
OTHER_SHA = hashlib.sha256(OTHER.read_bytes()).hexdigest()


def _spec(file: object = "member.tflite", weight: object = 0.3, own: object = 0.7, **extra) -> dict:
    return {"weight": own, "members": [{"file": file, "weight": weight, **extra}]}


def _models_dir(folder: Path) -> Path:
    """A copy of the shipped layer's models folder: an installed, working ensemble."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("saliency.tflite", "saliency.json", "saliency_member1.tflite", "saliency_member1.json"):
        (folder / name).write_bytes((MODELS / name).read_bytes())
    return folder


def _run_dir(folder: Path, card: dict | None = None) -> Path:
    """An exported member network (the shipped member's bytes) with a card beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "saliency.tflite"
    path.write_bytes(OTHER.read_bytes())
    path.with_suffix(".json").write_text(json.dumps(OTHER_CARD if card is None else card))
    return path


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.astronaut()[40:400, :]


# --- load_members: the card ------------------------------------------------------------------------


@pytest.mark.parametrize("file", [None, 7, ["member.tflite"], {"file": "member.tflite"}, "", ".."],
                         ids=["null", "number", "list", "dict", "empty", "dotdot"])
def test_a_member_file_that_is_not_a_plain_file_name_is_refused_not_hidden_behind_the_fallback(tmp_path, file):
    """Attack: `file` of the wrong JSON type (null, a number, a list, a dict) or a name that is a
    path part ("", ".."). The docstring promises a malformed card raises UnsupportedCardError at
    load and that a member has no path parts; today `str(m["file"])` turns null into "None", and
    "" / ".." pass the `Path(file).name == file` check, so the card reaches the disk as a
    missing file or a directory: OSError, and `load_saliency` silently crops with the centre
    prior instead of saying the install is wrong."""
    main = _install(tmp_path, _spec(file))
    with pytest.raises(UnsupportedCardError):
        LiteRTSaliency(main, num_threads=1)
    with pytest.raises(UnsupportedCardError):
        load_saliency(str(main), 1)


@pytest.mark.parametrize("own, weight", [("0.7", "0.3"), (0.7, "0.3"), (1e-300, True)],
                         ids=["both-text", "member-text", "member-bool"])
def test_a_weight_that_is_not_a_json_number_is_refused(tmp_path, own, weight):
    """Attack: weights of the wrong JSON type: numeric strings ("0.3") and a boolean (`true`,
    which `float()` reads as 1.0, here beside a positive own weight so the sum is 1). The
    existing tests refuse the text "much" as malformed and the exporter writes numbers, but
    `float()` accepts numeric text and bools, so these malformed cards load. A malformed card
    must raise UnsupportedCardError at load."""
    main = _install(tmp_path, _spec(weight=weight, own=own))
    with pytest.raises(UnsupportedCardError):
        LiteRTSaliency(main, num_threads=1)


def test_bool_weights_that_do_not_sum_to_one_are_refused(tmp_path):
    """Guard: booleans as weights whose values break the sum or positivity rule (true + true,
    false + true) are refused whatever their type."""
    for i, spec in enumerate((_spec(weight=True, own=True), _spec(weight=True, own=False))):
        with pytest.raises(UnsupportedCardError):
            LiteRTSaliency(_install(tmp_path / str(i), spec), num_threads=1)


def test_an_uppercase_sha256_of_the_right_bytes_is_accepted(tmp_path, photo):
    """Attack: the member's digest in upper-case hex (what Windows' Get-FileHash and certutil
    print). Hex is case-insensitive and the bytes are the right ones, yet the comparison is
    case-sensitive: ValueError, and the engine silently falls back to the centre prior."""
    main = _install(tmp_path, _spec(sha256=OTHER_SHA.upper()))
    model = LiteRTSaliency(main, num_threads=1)
    assert len(model.members) == 1
    assert not isinstance(load_saliency(str(main), 1), CentreBiasSaliency)


def test_a_member_card_that_is_not_a_json_object_does_not_crash_load_saliency(tmp_path):
    """Attack: the member's card is valid JSON but a list. `load_members` calls `.get` on it and
    an AttributeError escapes `load_saliency` (which catches OSError/ValueError/RuntimeError/
    ImportError): the process's first crop crashes. The docstring promises either the labelled
    fallback (unreadable member) or UnsupportedCardError (a card the engine cannot honour)."""
    main = _install(tmp_path, _spec(), member_card=[OTHER_CARD])
    try:
        got = load_saliency(str(main), 1)
    except UnsupportedCardError:
        return
    assert isinstance(got, CentreBiasSaliency)


def test_a_hard_link_to_the_model_is_not_a_different_member(tmp_path):
    """Attack: the member is a hard link to the main model (one file, two names). The promise is
    "a member must be a different file"; the check compares resolved paths, which a symlink
    fails but a hard link passes, so the network is blended with itself."""
    main = _install(tmp_path, _spec())
    (tmp_path / "member.tflite").unlink()
    os.link(main, tmp_path / "member.tflite")
    with pytest.raises(UnsupportedCardError):
        LiteRTSaliency(main, num_threads=1)


def test_a_symlink_to_the_model_and_a_members_face_channel_are_refused(tmp_path):
    """Guard: a member that is a symlink to the main model is "itself" and refused; a member
    whose own card names a face channel is refused (the engine has none) at load, through
    `load_saliency` too, never cropped without the channel it names."""
    main = _install(tmp_path / "sym", _spec())
    (tmp_path / "sym" / "member.tflite").unlink()
    os.symlink(main, tmp_path / "sym" / "member.tflite")
    with pytest.raises(UnsupportedCardError):
        LiteRTSaliency(main, num_threads=1)
    face = {**OTHER_CARD, "runtime_prior": {"centre_exponent": 0.25, "face_weight": 0.5}}
    main = _install(tmp_path / "face", _spec(), member_card=face)
    with pytest.raises(UnsupportedCardError, match="face_weight"):
        load_saliency(str(main), 1)


def test_unreadable_members_fall_back_to_the_labelled_centre_prior(tmp_path):
    """Guard: an empty member file, a directory named like the member, and a member that is a
    real LiteRT model but no saliency network (the shipped ranker, two signatures) each make
    `load_saliency` return the labelled centre-bias fallback, never a half-loaded ensemble."""
    empty = _install(tmp_path / "empty", _spec())
    (tmp_path / "empty" / "member.tflite").write_bytes(b"")
    folder = _install(tmp_path / "dir", _spec())
    (tmp_path / "dir" / "member.tflite").unlink()
    (tmp_path / "dir" / "member.tflite").mkdir()
    ranker = _install(tmp_path / "ranker", _spec(), member_card={})
    (tmp_path / "ranker" / "member.tflite").write_bytes((MODELS / "ranker.tflite").read_bytes())
    for main in (empty, folder, ranker):
        got = load_saliency(str(main), 1)
        assert isinstance(got, CentreBiasSaliency) and got.name == "centre-bias-fallback", main


@pytest.mark.parametrize("name", ["mémbre ü.tflite", "50% member.tflite", "member with spaces.tflite"])
def test_member_names_with_unicode_spaces_and_percent_load(tmp_path, name, photo):
    """Guard: a member file name with unicode, spaces or '%' is still a plain name beside the
    model and loads with its digest checked."""
    main = _install(tmp_path, _spec(file=name, sha256=OTHER_SHA), member_name=name)
    model = LiteRTSaliency(main, num_threads=1)
    assert len(model.members) == 1
    assert model.predict(photo).shape == photo.shape[:2]


# --- the blended map -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 2, 3), (1, 3000, 3), (3000, 1, 3), (7, 1001, 3), (50, 60, 3)])
def test_the_blend_has_the_photos_shape_and_stays_in_range_for_degenerate_photos(tmp_path, shape):
    """Guard: 1x1, 2x2, 1-pixel-tall and -wide and odd-sized photos (noise; an all-black one for
    the last) through the blend: each network's map must come back at the photo's size, so the
    weighted sum broadcasts to it; float32, finite, in [0, 1] with its peak at 1 (no NaN from
    a zero map)."""
    model = LiteRTSaliency(_install(tmp_path, _spec()), num_threads=1)
    rgb = (np.zeros(shape, np.uint8) if shape == (50, 60, 3)
           else np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    out = model.predict_with_features(rgb)
    assert out.saliency.shape == shape[:2] and out.saliency.dtype == np.float32
    assert np.isfinite(out.saliency).all() and out.saliency.min() >= 0
    assert out.saliency.max() == pytest.approx(1)
    assert out.features is not None and out.features.shape == (16, 16, 96)


def test_a_vanishing_own_weight_is_the_members_map(tmp_path, photo):
    """Guard: own weight 1e-300 (positive, sums to 1 with the member's 1.0, underflows in
    float32): the blend is the member's map alone, with no NaN, while the features stay the
    main network's."""
    model = LiteRTSaliency(_install(tmp_path, _spec(weight=1.0, own=1e-300)), num_threads=1)
    member, _ = model.members[0]
    out = model.predict_with_features(photo)
    np.testing.assert_allclose(out.saliency, member.predict(photo), atol=1e-6)
    alone = LiteRTSaliency(_install(tmp_path / "alone", None), num_threads=1)
    np.testing.assert_array_equal(out.features, alone.predict_with_features(photo).features)


def test_the_engine_end_to_end_reports_and_uses_the_ensemble(tmp_path):
    """Guard: autocrop's public `analyse_image` with an ensemble predictor: the result names
    both networks and its map is the ensemble's map at analysis size (the ranker gets the
    main network's features; crops come back for every ratio)."""
    model = LiteRTSaliency(_install(tmp_path, _spec()), num_threads=1)
    ok, png = cv2.imencode(".png", cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    assert ok
    decoded = decode(png.tobytes())
    result = analyse_image(decoded, CropOptions(ratios=("1:1", "16:9")), saliency=model, detector=NoFaceDetector())
    assert result.models["saliency"] == model.name and "+" in model.name
    np.testing.assert_allclose(result.saliency, model.predict(decoded.rgb), atol=1e-6)
    assert len(result.crops) == 2


# --- model_export.saliency: shipping members ------------------------------------------------------


@pytest.mark.parametrize("weights", [(0.3333333, 0.3333333), (0.9999999,), (1e-7,), (0.1000004,) * 4],
                         ids=["thirds", "member-near-1", "member-near-0", "four-tenths"])
def test_what_ship_members_writes_the_engine_loads(tmp_path, weights):
    """Attack: member weights that `member_arg` and `export` accept (0 < w < 1, own weight > 0),
    e.g. three equal networks as `--member a:0.3333333 --member b:0.3333333`. `ship_members`
    rounds every weight to 6 places: the thirds become 0.333333 x 3 (sum 0.999999, off by more
    than load_members' 1e-6), 0.9999999 leaves an own weight of 0.0, 1e-7 a member weight of
    0.0. The card it writes is then refused by the engine (and `export` raises after it has
    already replaced the shipped model and its members)."""
    members = tuple((_run_dir(tmp_path / f"run{i}"), w) for i, w in enumerate(weights))
    models = tmp_path / "models"
    models.mkdir()
    (models / "saliency.tflite").write_bytes(DEFAULT_SALIENCY_MODEL.read_bytes())
    spec = ship_members(members, models)
    own, loaded = load_members({"ensemble": spec}, models / "saliency.tflite", 1)
    assert len(loaded) == len(weights)
    assert own + sum(w for _, w in loaded) == pytest.approx(1, abs=1e-6)


def test_reshipping_the_shipped_member_keeps_it(tmp_path):
    """Attack: re-export with the member that is already installed
    (`--member layers/autocrop/models/saliency_member1.tflite:0.3`, the natural way to keep the
    current member while the main network changes). `ship_members` deletes every
    saliency_member* first, i.e. its own input, then fails to read it: the member network is
    lost from the layer and the export crashes."""
    models = _models_dir(tmp_path / "models")
    member = models / "saliency_member1.tflite"
    spec = ship_members(((member, 0.3),), models)
    assert spec is not None
    shipped = models / spec["members"][0]["file"]
    assert shipped.read_bytes() == OTHER.read_bytes() and shipped.with_suffix(".json").is_file()


def test_a_refused_member_leaves_the_installed_ensemble_working(tmp_path):
    """Attack: `ship_members` with a member it refuses (an ensemble itself). It deletes the
    installed members before it checks the new ones, so after the ValueError the shipped card
    still names saliency_member1.tflite, which is gone: the installed layer now silently crops
    with the centre-bias fallback. A refused export must leave the installed model as it was."""
    models = _models_dir(tmp_path / "models")
    bad = _run_dir(tmp_path / "bad", {**OTHER_CARD, "ensemble": {"weight": 0.5, "members": []}})
    with pytest.raises(ValueError, match="ensemble itself"):
        ship_members(((bad, 0.3),), models)
    assert len(LiteRTSaliency(models / "saliency.tflite", num_threads=1).members) == 1
    assert not isinstance(load_saliency(str(models / "saliency.tflite"), 1), CentreBiasSaliency)


def test_ship_members_removes_only_what_an_export_wrote(tmp_path):
    """Attack: a models folder holding unrelated entries whose names begin with
    "saliency_member": a notes file and a folder. The docstring says only members an earlier
    export left there go (saliency_member<N>.tflite/.json); the glob deletes the notes and
    crashes (IsADirectoryError) on the folder."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "saliency_members_README.md").write_text("which teacher is which")
    (models / "saliency_member_backup").mkdir()
    (models / "saliency_member2.json").write_text("{}")  # an earlier export's: goes
    spec = ship_members(((_run_dir(tmp_path / "run"), 0.3),), models)
    assert spec is not None
    assert sorted(p.name for p in models.iterdir()) == [
        "saliency_member1.json", "saliency_member1.tflite", "saliency_member_backup", "saliency_members_README.md"]


def test_member_arg_splits_on_the_last_colon(tmp_path):
    """Guard: a member path holding ':' (a Windows drive, a folder named 'C:x') is split at the
    last colon, so the path keeps its colons and the weight is what follows."""
    folder = tmp_path / "C:x"
    member = _run_dir(folder)
    assert member_arg(f"{member}:0.25") == (member, 0.25)
    with pytest.raises(argparse.ArgumentTypeError):
        member_arg(f"{member}:0.25:")


def test_the_rebuild_command_survives_a_member_path_with_a_space(tmp_path):
    """Attack: a member whose path has a space ("runs/teacher b/..."). The card's `commands`
    are the commands that rebuild the model; written unquoted, the shell splits the path and
    `--member` receives "runs/teacher". Parsed as a shell would, the argument after --member
    must be the whole PATH:WEIGHT."""
    member = tmp_path / "teacher b" / "saliency.tflite"
    cmd = next(c for c in commands(Path("runs/a"), {}, None, ((member, 0.3),)) if "--member" in c)
    argv = shlex.split(cmd)
    assert argv[argv.index("--member") + 1] == f"{member}:0.3"


def test_rounded_leaves_only_plain_json_types():
    """Attack: card figures that are numpy integers (e.g. a count from np.sum) or 0-d numpy
    values. `rounded` is what makes a card's figures plain JSON (its test checks json.dumps);
    a numpy integer passes through untouched and json.dumps raises TypeError."""
    figures = {"n": np.int64(70), "cc": np.float32(0.81234567), "photos": [np.int32(3), 4.0]}
    out = rounded(figures)
    assert json.loads(json.dumps(out)) == {"n": 70, "cc": 0.8123, "photos": [3, 4.0]}


# --- benchmarks/bench_saliency.py -----------------------------------------------------------------


def test_the_benchmark_counts_a_members_own_flip(tmp_path):
    """Attack: a member whose own card turns test-time flipping on. The runtime then runs that
    member twice per photo (tests/engine/test_saliency_ensemble.py shows members honour their
    own flip, and model_export's passes_latency counts it), but `passes()` adds each member as
    one unmirrored pass: the benchmark under-counts the ensemble's cost."""
    main = _install(tmp_path, _spec(), member_card={**OTHER_CARD, "test_time_flip": True})
    runners, size = passes(main)
    model = LiteRTSaliency(main, num_threads=1)
    expected = 1 + model.flip + sum(1 + m.flip for m, _ in model.members)
    assert len(runners) == expected == 3
    assert sorted(flip for _, flip in runners) == [False, False, True]
    assert size == main.stat().st_size + (tmp_path / "member.tflite").stat().st_size

