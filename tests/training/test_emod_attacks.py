"""Attacks on EMOd as a maps-only set: `training.saliency` (its own prior with per-dataset
priors), `training.saliency_frozen` (the cached set 'emod') and `training.evaluate` (the
CC-only held-out row).

Everything here is real: real JPEG/PNG files (EMOd's own, or small ones written with OpenCV
in the EMOd layout), the real ImageNet encoder, real Keras readouts and the shipped TFLite
model. Data is kept tiny (2-4 photos per set-part)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.shared_data import DATA, needs_data

REPO = Path(__file__).resolve().parents[2]
EMOD = DATA / "saliency" / "emod_fdm"
BACKBONE = DATA / "weights" / "backbone" / "mobilenet_v2_imagenet_torchvision.npz"


# --- helpers --------------------------------------------------------------------------------


def blob(h: int, w: int, cx: float, cy: float, sigma: float = 0.08) -> np.ndarray:
    """A Gaussian blob at relative (cx, cy), peak 1, sigma relative to the width."""
    ys = (np.arange(h, dtype=np.float64)[:, None] + 0.5) / h
    xs = (np.arange(w, dtype=np.float64)[None, :] + 0.5) / w
    return np.exp(-(((xs - cx) ** 2) + ((ys - cy) * h / w) ** 2) / (2 * sigma * sigma))


def write_photo(path: Path, h: int, w: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    cv2.rectangle(rgb, (seed % w, 0), (seed % w + 5, h - 1), (255, 255, 255), -1)  # photos differ
    assert cv2.imwrite(str(path), rgb)


def write_map(path: Path, grey01: np.ndarray, mode: str = "rgb") -> None:
    g = np.round(np.clip(grey01, 0, 1) * 255).astype(np.uint8)
    if mode == "grey":
        img = g
    elif mode == "rgb":
        img = np.dstack([g, g, g])
    elif mode == "rgba":
        img = np.dstack([g, g, g, np.full_like(g, 255)])
    else:
        raise ValueError(mode)
    assert cv2.imwrite(str(path), img)


def write_emod(root: Path, n: int, photo_hw=(96, 128), map_hw=None, val_map=None, train_map=None,
               mode: str = "rgb") -> list[str]:
    """An EMOd-layout folder of `n` photos named 100..; returns the names in sorted order.

    `val_map(h, w)` / `train_map(h, w)`: the map of photos that emod_maps holds out (every 10th
    by name) / trains on; default a centre blob / a top-left blob."""
    (root / "images").mkdir(parents=True)
    (root / "maps").mkdir()
    names = sorted(str(100 + i) for i in range(n))
    mh, mw = map_hw or photo_hw
    val_map = val_map or (lambda h, w: blob(h, w, 0.5, 0.5))
    train_map = train_map or (lambda h, w: blob(h, w, 0.2, 0.25))
    for i, name in enumerate(names):
        write_photo(root / "images" / f"{name}.jpg", *photo_hw, seed=i)
        write_map(root / "maps" / f"{name}.png", (val_map if i % 10 == 0 else train_map)(mh, mw), mode)
    return names


def peak_xy(a: np.ndarray) -> tuple[float, float]:
    """The relative (x, y) of a map's maximum."""
    y, x = np.unravel_index(int(np.argmax(a)), a.shape)
    return (x + 0.5) / a.shape[1], (y + 0.5) / a.shape[0]


def load_pre_change_frozen(tmp: Path):
    """training/saliency_frozen.py as of c767491 (before the change), as a module of `training`."""
    src = subprocess.run(["git", "show", "c767491:training/saliency_frozen.py"], cwd=REPO,
                         check=True, capture_output=True, text=True).stdout
    path = tmp / "pre_change_saliency_frozen.py"
    path.write_text(src)
    name = "training._pre_change_saliency_frozen"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


# --- frozen cache: fixation sets untouched, EMOd's parts right --------------------------------


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """The pre-change and the changed build_cache on the same data (limit 2, 2 views), the
    changed one with real EMOd; one real encoder serves both (built once: it is the slow part)."""
    import training.saliency_frozen as new
    from training.saliency_model import SaliencyNetConfig

    root = tmp_path_factory.mktemp("caches")
    old = load_pre_change_frozen(root)
    net = new.encoder(replace(SaliencyNetConfig(), deep_tap=True), BACKBONE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(new, "encoder", lambda config, backbone=None: net)
        mp.setattr(old, "encoder", lambda config, backbone=None: net)
        old.build_cache(DATA, root / "old", SaliencyNetConfig(priors=2), views=2, backbone=BACKBONE, limit=2)
        new.build_cache(DATA, root / "new", SaliencyNetConfig(priors=3), views=2, backbone=BACKBONE, limit=2,
                        emod=EMOD)
    return root / "old", root / "new"


@needs_data
def test_fixation_sets_cache_is_identical_to_the_pre_change_build_cache(caches):
    old, new = caches
    old_files = sorted(p.name for p in old.glob("*.npz"))
    new_files = sorted(p.name for p in new.glob("*.npz"))
    assert old_files == ["eyecrowd_train.npz", "eyecrowd_val.npz", "mit1003_val.npz", "osie_train.npz",
                         "osie_val.npz"]
    assert new_files == sorted(old_files + ["emod_train.npz", "emod_val.npz"])
    for name in old_files:
        with np.load(old / name) as a, np.load(new / name) as b:
            assert sorted(a.files) == sorted(b.files), name
            for key in a.files:
                assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, (name, key)
                assert a[key].tobytes() == b[key].tobytes(), (name, key)


@needs_data
def test_emod_cache_is_the_training_photos_views_and_the_held_out_plain_view(caches):
    """emod_train: the first training pairs (never a held-out photo), each view the augmented
    example of (seed, i, view), empty fixation channel; emod_val: the held-out photos that the
    evaluator scores, plain view."""
    from training.saliency import TrainConfig, cache_map_sample, emod_maps, make_example, read_density

    _, new = caches
    train_pairs, val_pairs = emod_maps(EMOD)
    with np.load(new / "emod_train.npz") as z:
        names, targets, views = [str(n) for n in z["names"]], z["targets"], int(z["views"])
        assert views == 2 and targets.shape == (4, 64, 64, 2) and targets.dtype == np.float16
        assert z["tap4"].shape[0] == z["taptop"].shape[0] == 4
    assert names == [p.stem for p, _ in train_pairs[:2]]
    assert not set(names) & {p.stem for p, _ in val_pairs}
    aug = TrainConfig()
    for i, (img, m) in enumerate(train_pairs[:2]):
        sample = cache_map_sample(img, read_density(m))
        for v in range(2):
            rng = None if v == 0 else np.random.default_rng((aug.seed, i, v))
            _, want = make_example(sample, rng, aug)
            np.testing.assert_array_equal(targets[i * 2 + v], want.astype(np.float16))
    assert not targets[..., 1].any()
    with np.load(new / "emod_val.npz") as z:
        assert int(z["views"]) == 1 and z["targets"].shape == (2, 64, 64, 2)
        assert [str(n) for n in z["names"]] == [p.stem for p, _ in val_pairs[:2]]
        assert not z["targets"][..., 1].any()
        assert np.all(z["targets"][..., 0].astype(np.float32).sum(axis=(1, 2)) > 0)


@needs_data
@pytest.mark.parametrize("sets", [("emod", "osie", "eyecrowd"), ("osie", "emod", "eyecrowd"),
                                  ("eyecrowd", "osie", "emod"), ("emod", "osie")])
def test_tap_batches_give_each_photo_its_own_sets_prior_whatever_the_order(caches, sets):
    """Every batch row's one-hot `dataset` names the set the row's photo came from, with
    'emod' first, in the middle or last in --sets (train: augmented, val: plain)."""
    from training.saliency_frozen import FrozenConfig, TapBatches, load_taps
    from training.saliency_model import SaliencyNetConfig

    _, new = caches
    cfg = FrozenConfig(sets=sets, batch_size=3, views=2, net=SaliencyNetConfig(priors=len(sets)))
    for part, augment in (("train", True), ("val", False)):
        parts = [load_taps(new, s, part, cfg.net) for s in sets]
        owner = {}
        for k, p in enumerate(parts):
            for row in p.targets:
                owner.setdefault(row.tobytes(), set()).add(k)
        batches = TapBatches(parts, cfg, augment)
        seen = 0
        for b in range(len(batches)):
            x, y = batches[b]
            onehot = x["dataset"]
            assert onehot.shape == (len(y), len(sets))
            assert np.all(onehot.sum(axis=1) == 1)
            for row, hot in zip(y, onehot, strict=True):
                assert owner[row.astype(np.float16).tobytes()] == {int(np.argmax(hot))}, (part, sets)
            seen += len(y)
        assert seen == sum(len(p.names) for p in parts)


@needs_data
@pytest.mark.parametrize("sets", [("osie", "eyecrowd", "emod"),
                                  ("emod", "osie", "eyecrowd"),
                                  ("osie", "emod", "eyecrowd")])
def test_adding_emod_leaves_the_fixation_photos_cross_fitting_folds_alone(caches, sets):
    """With --folds 3, each fold holds out the same OSIE and EyeCrowd photos whether or not
    EMOd trains beside them (as training.saliency does: EMOd joins after folding)."""
    from training.saliency_frozen import held_in, load_taps
    from training.saliency_model import SaliencyNetConfig

    _, new = caches
    config = SaliencyNetConfig()

    def held(names):
        parts = held_in([load_taps(new, s, "train", config) for s in names], 3, fold)
        return {p.dataset: p.names for p in parts if p.dataset != "emod"}

    for fold in range(3):
        assert held(sets) == held(("osie", "eyecrowd")), fold


@needs_data
def test_frozen_readout_trains_with_emod_listed_first(caches, tmp_path):
    from training.saliency_frozen import FrozenConfig, load_readout, run_config, train
    from training.saliency_model import SaliencyNetConfig, learned_prior_maps

    _, new = caches
    cfg = FrozenConfig(sets=("emod", "osie"), epochs=1, batch_size=4, lr=3e-3, views=2,
                       net=SaliencyNetConfig(priors=2))
    history = train(cfg, new, tmp_path / "run", verbose=0)
    assert all(np.isfinite(v).all() for v in history.values())
    assert run_config(tmp_path / "run").sets == ("emod", "osie")
    maps = learned_prior_maps(load_readout(tmp_path / "run"))
    assert maps.shape == (2, 64, 64) and np.abs(maps).max(axis=(1, 2)).min() > 0


@needs_data
def test_frozen_cli_naming_emod_without_folder_fails_before_caching(tmp_path):
    from training.saliency_frozen import main

    for sets in ("emod", "emod,osie", "osie,eyecrowd,emod"):
        with pytest.raises(SystemExit) as stop:
            main(["--sets", sets, "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "run"),
                  "--data", str(DATA)])
        assert stop.value.code == 2
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    assert not (tmp_path / "run").exists()


@needs_data
def test_frozen_cli_missing_emod_folder_is_a_usage_error(tmp_path):
    from training.saliency_frozen import main

    with pytest.raises(SystemExit) as stop:
        main(["--sets", "osie,eyecrowd,emod", "--emod", str(tmp_path / "nope"), "--cache", str(tmp_path / "c"),
              "--out", str(tmp_path / "run"), "--data", str(DATA), "--cache-only"])
    assert stop.value.code == 2


# --- training.saliency: EMOd's samples carry EMOd's prior index --------------------------------


class _Stop(Exception):
    pass


@pytest.fixture
def captured_batches(monkeypatch):
    """Run training.saliency.train up to (not into) building the net; keep its batch makers."""
    import training.saliency as sal

    made = []

    class Recording(sal.SaliencyBatches):
        def __init__(self, samples, cfg, augment, **kw):
            super().__init__(samples, cfg, augment, **kw)
            made.append(self)

    def stop(*a, **kw):
        raise _Stop

    monkeypatch.setattr(sal, "SaliencyBatches", Recording)
    monkeypatch.setattr(sal, "build_saliency_net", stop)
    return made


@needs_data
def test_emod_samples_get_the_last_prior_and_never_a_fixation_sets(tmp_path, captured_batches):
    """sets (eyecrowd, osie) + EMOd with 3 priors: EyeCrowd 0, OSIE 1, EMOd 2, in the samples
    and in the one-hot batches; EMOd's held-out photos are not among the training samples and
    nothing of EMOd is in validation."""
    from training.saliency import TrainConfig, cache_map_sample, emod_maps, read_density, train
    from training.saliency_model import SaliencyNetConfig

    emod = tmp_path / "emod"
    write_emod(emod, 12)
    cfg = TrainConfig(sets=("eyecrowd", "osie"), max_images=4, batch_size=4, emod=str(emod),
                      net=SaliencyNetConfig(priors=3))
    with pytest.raises(_Stop):
        train(cfg, DATA, tmp_path / "run", BACKBONE)
    train_data, val_data = captured_batches
    assert [s.dataset for s in train_data.samples] == [0] * 4 + [2] * 4
    assert {s.dataset for s in val_data.samples} <= {0, 1} and len(val_data.samples) == 2
    assert all(len(s.fixations) > 0 for s in val_data.samples)  # fixation photos only
    train_pairs, val_pairs = emod_maps(emod)
    emod_samples = train_data.samples[4:]
    for s, (img, m) in zip(emod_samples, train_pairs[:4], strict=True):
        want = cache_map_sample(img, read_density(m))
        np.testing.assert_array_equal(s.rgb, want.rgb)
        assert len(s.fixations) == 0
    held_out = [cache_map_sample(img, read_density(m)).rgb for img, m in val_pairs]
    for s in train_data.samples:
        assert not any(s.rgb.shape == h.shape and np.array_equal(s.rgb, h) for h in held_out)
    for b in range(len(train_data)):
        x, y = train_data[b]
        idx = train_data.order[b * 4 : (b + 1) * 4]
        want = np.eye(3, dtype=np.float32)[[train_data.samples[i].dataset for i in idx]]
        np.testing.assert_array_equal(x["dataset"], want)
        # EMOd rows: empty fixation channel, a density that is there.
        for row, i in zip(y, idx, strict=True):
            if train_data.samples[i].dataset == 2:
                assert not row[..., 1].any() and row[..., 0].sum() > 0


@needs_data
def test_emod_with_a_shared_prior_or_a_wrong_prior_count(tmp_path, captured_batches):
    from training.saliency import TrainConfig, train
    from training.saliency_model import SaliencyNetConfig

    emod = tmp_path / "emod"
    write_emod(emod, 11)
    base = TrainConfig(sets=("osie",), max_images=2, batch_size=4, emod=str(emod))
    with pytest.raises(_Stop):
        train(replace(base, net=SaliencyNetConfig(priors=1)), DATA, tmp_path / "a", BACKBONE)
    train_data = captured_batches[0]
    assert [s.dataset for s in train_data.samples] == [0] * 4
    x, _ = train_data[0]
    assert isinstance(x, np.ndarray)  # one shared prior: no dataset input
    for priors in (3, 4):  # neither shared nor len(sets) + 1
        with pytest.raises(ValueError, match="priors"):
            train(replace(base, net=SaliencyNetConfig(priors=priors)), DATA, tmp_path / "b", BACKBONE)


def test_saliency_cli_counts_emod_as_one_more_prior_only_with_per_dataset_priors(tmp_path, monkeypatch):
    import training.saliency as sal

    got = []
    monkeypatch.setattr(sal, "train", lambda cfg, *a, **kw: got.append(cfg))
    emod = tmp_path / "emod"
    write_emod(emod, 3)
    out = ["--out", str(tmp_path / "run")]
    cases = [(["--sets", "osie", "--per-dataset-priors", "--emod", str(emod)], 2, ("osie",)),
             (["--sets", "eyecrowd,osie", "--per-dataset-priors", "--emod", str(emod)], 3, ("eyecrowd", "osie")),
             (["--sets", "osie,eyecrowd", "--emod", str(emod)], 1, ("osie", "eyecrowd")),
             (["--sets", "osie,eyecrowd", "--per-dataset-priors"], 2, ("osie", "eyecrowd"))]
    for argv, priors, sets in cases:
        sal.main(out + argv)
        assert got[-1].net.priors == priors and got[-1].sets == sets, argv
    assert got[0].emod == str(emod) and got[-1].emod is None
    for argv in (["--per-dataset-priors", "--emod", str(emod), "--unlabelled", str(tmp_path),
                  "--teacher", "t.tflite", "--distill", "0.5"],):
        with pytest.raises(SystemExit) as stop:
            sal.main(out + argv)
        assert stop.value.code == 2
    assert len(got) == len(cases)


# --- maps of another size or kind than their photo ---------------------------------------------


@pytest.mark.parametrize("mode", ["grey", "rgb", "rgba"])
def test_a_map_of_another_size_or_kind_lands_on_its_photo(tmp_path, mode):
    """A map at half (or double) the photo's size, stored grey, RGB or RGBA, gives the same
    cached density, aligned with the photo, with no fixations."""
    from training.saliency import TrainConfig, cache_map_sample, make_example, read_density

    img = tmp_path / "p.jpg"
    write_photo(img, 96, 128, seed=3)
    ref = None
    for hw in ((48, 64), (96, 128), (192, 256)):
        m = tmp_path / f"m{hw[0]}.png"
        write_map(m, blob(*hw, 0.75, 0.3), mode)
        sample = cache_map_sample(img, read_density(m))
        assert sample.density.shape == sample.rgb.shape[:2] == (288, 384)
        assert sample.density.min() >= 0 and sample.density.sum() > 0  # the losses normalise it
        x, y = peak_xy(sample.density)
        assert x == pytest.approx(0.75, abs=0.03) and y == pytest.approx(0.3, abs=0.03)
        _, target = make_example(sample, None, TrainConfig())
        assert not target[..., 1].any()
        if ref is None:
            ref = sample.density
        else:
            assert np.corrcoef(ref.ravel(), sample.density.ravel())[0, 1] > 0.99


def test_a_map_of_another_size_blends_with_the_teachers_map(tmp_path):
    from training.saliency import cache_map_sample, read_density

    img, m = tmp_path / "p.jpg", tmp_path / "p.png"
    write_photo(img, 96, 128, seed=1)
    write_map(m, blob(48, 64, 0.75, 0.3))
    teacher = lambda rgb: blob(*rgb.shape[:2], 0.25, 0.7).astype(np.float32)  # noqa: E731
    sample = cache_map_sample(img, read_density(m), teacher, 0.5)
    assert sample.density.shape == sample.rgb.shape[:2]
    # Both halves of the blend are where they belong on the photo.
    d = sample.density
    h, w = d.shape
    assert d[int(0.3 * h), int(0.75 * w)] > 10 * d[h // 2, w // 2]
    assert d[int(0.7 * h), int(0.25 * w)] > 10 * d[h // 2, w // 2]


def test_an_empty_or_missing_map_is_an_error_not_a_silent_sample(tmp_path):
    from training.saliency import emod_maps, read_density

    emod = tmp_path / "emod"
    names = write_emod(emod, 4)
    (emod / "maps" / f"{names[1]}.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError):
        read_density(emod / "maps" / f"{names[1]}.png")
    (emod / "maps" / f"{names[2]}.png").unlink()
    with pytest.raises(FileNotFoundError):
        emod_maps(emod)


# --- evaluate: the CC-only EMOd row --------------------------------------------------------------


def test_evaluate_scores_only_the_held_out_maps_at_the_maps_size(tmp_path):
    """12 photos: the held-out two (names 100 and 110) have centre maps at twice the photo's
    size, the other ten top-left maps. The centre bias (made at the photo's size) scores
    CC ~ 1 on exactly two photos; so does a prediction of a third size; a top-left map does not."""
    from training.evaluate import evaluate_maps_only
    from training.metrics import centre_bias

    emod = tmp_path / "emod"
    names = write_emod(emod, 12, photo_hw=(96, 128), map_hw=(192, 256),
                       val_map=lambda h, w: centre_bias(h, w) / centre_bias(h, w).max())
    assert names[0] == "100" and names[10] == "110"
    seen = []

    def centre(rgb):
        seen.append(rgb.shape)
        return centre_bias(*rgb.shape[:2])

    r = evaluate_maps_only(centre, emod)
    assert r["n"] == 2 and set(r) == {"n", "cc"} and r["cc"] > 0.99
    assert seen == [(96, 128, 3)] * 2  # the photo, in RGB, at its own size
    assert evaluate_maps_only(lambda rgb: centre_bias(30, 40), emod)["cc"] > 0.99
    assert evaluate_maps_only(lambda rgb: centre_bias(200, 100), emod)["cc"] > 0.9
    corner = evaluate_maps_only(lambda rgb: blob(*rgb.shape[:2], 0.2, 0.25), emod)["cc"]
    assert corner < 0.5
    for mode in ("grey", "rgba"):
        other = tmp_path / mode
        write_emod(other, 12, photo_hw=(96, 128), map_hw=(192, 256), mode=mode,
                   val_map=lambda h, w: centre_bias(h, w) / centre_bias(h, w).max())
        assert evaluate_maps_only(centre, other)["cc"] == pytest.approx(r["cc"], abs=1e-6)


@pytest.fixture
def few_val_records(monkeypatch):
    """The evaluator's fixation rows on the first 2 validation photos per set (real records),
    so a CLI run stays short; the EMOd row is untouched by this."""
    import training.evaluate as ev

    real = ev.validation_records

    def first_two(data_root, sets=("osie", "eyecrowd")):
        records = real(data_root, sets)
        return [r for name in sets for r in [x for x in records if x.dataset == name][:2]]

    monkeypatch.setattr(ev, "validation_records", first_two)


@needs_data
def test_evaluate_cli_emod_row_json_and_table(tmp_path, capsys, few_val_records):
    from autocrop.saliency import DEFAULT_SALIENCY_MODEL
    from training.evaluate import ROW_LABELS, main

    out = tmp_path / "r.json"
    assert main(["--model", str(DEFAULT_SALIENCY_MODEL), "--data", str(DATA), "--emod", str(EMOD),
                 "--json", str(out)]) == 0
    table = capsys.readouterr().out
    results = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert results["model"]["combined"]["n"] == 4
    for who in ("model", "baseline"):
        assert results[who]["emod"]["n"] == 19 and set(results[who]["emod"]) == {"n", "cc"}
        assert "emod" not in results[who]["combined"] and results[who]["combined"]["n"] == 4
    assert results["model"]["emod"]["cc"] == pytest.approx(0.562, abs=0.01)
    assert results["cc_gain"]["emod"] == pytest.approx(results["model"]["emod"]["cc"] - results["baseline"]["emod"]["cc"])
    assert set(results["cc_gain"]) == set(results["baseline"]) == {"osie", "eyecrowd", "combined", "mit1003", "emod"}
    lines = table.splitlines()
    row = next(line for line in lines if line.startswith(ROW_LABELS["emod"]))
    cells = row[len(ROW_LABELS["emod"]):].split()
    assert cells == ["19", f"{results['model']['emod']['cc']:.3f}", "-", "-",
                     f"{results['baseline']['emod']['cc']:.3f}", "-", "-", f"{results['cc_gain']['emod']:+.3f}"]
    assert len({len(line) for line in lines if line.strip()}) == 1  # columns still line up
    # The fixation rows keep every metric.
    osie = next(line for line in lines if line.startswith(ROW_LABELS["osie"]))
    assert "-" not in osie[len(ROW_LABELS["osie"]):].replace("+", "").split()

    base = tmp_path / "b.json"
    assert main(["--baseline-only", "--data", str(DATA), "--emod", str(EMOD), "--json", str(base)]) == 0
    table = capsys.readouterr().out
    b = json.loads(base.read_text())
    assert "model" not in b and "cc_gain" not in b
    assert b["baseline"]["emod"] == pytest.approx(results["baseline"]["emod"])
    row = next(line for line in table.splitlines() if line.startswith(ROW_LABELS["emod"]))
    assert row[len(ROW_LABELS["emod"]):].split() == ["19", f"{b['baseline']['emod']['cc']:.3f}", "-", "-"]


@needs_data
def test_evaluate_without_emod_has_no_emod_row(tmp_path, capsys, few_val_records):
    from training.evaluate import ROW_LABELS, main

    out = tmp_path / "r.json"
    assert main(["--baseline-only", "--data", str(DATA), "--json", str(out)]) == 0
    assert ROW_LABELS["emod"] not in capsys.readouterr().out
    assert "emod" not in json.loads(out.read_text())["baseline"]


@needs_data
def test_evaluate_cli_missing_emod_folder_is_a_usage_error(tmp_path, few_val_records):
    from training.evaluate import main

    with pytest.raises(SystemExit) as stop:
        main(["--baseline-only", "--data", str(DATA), "--emod", str(tmp_path / "nope")])
    assert stop.value.code == 2
