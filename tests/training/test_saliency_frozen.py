"""Frozen-encoder saliency: cached taps, a few readout steps, the assembled image-only net."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autocrop.preprocess import letterbox
from tests.shared_data import DATA, needs_data


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from training.saliency_frozen import FrozenConfig, build_cache, train
    from training.saliency_model import SaliencyNetConfig

    root = tmp_path_factory.mktemp("frozen")
    net = SaliencyNetConfig(priors=2)
    build_cache(DATA, root / "cache", net, views=2, backbone=BACKBONE, limit=8)
    cfg = FrozenConfig(epochs=3, batch_size=4, lr=3e-3, views=2, net=net)
    history = train(cfg, root / "cache", root / "run", verbose=0)
    return root, history


BACKBONE = DATA / "weights" / "backbone" / "mobilenet_v2_imagenet_torchvision.npz"


@needs_data
def test_cache_holds_every_tap_and_view_and_the_loss_falls(run):
    root, history = run
    with np.load(root / "cache" / "osie_train.npz") as z:
        assert int(z["views"]) == 2 and z["tap4"].shape == (16, 64, 64, 24)
        assert z["taptop"].shape == (16, 8, 8, 1280) and z["targets"].shape == (16, 64, 64, 2)
        # Augmented views differ from the plain one.
        assert not np.allclose(z["tap16"][0], z["tap16"][1])
    with np.load(root / "cache" / "mit1003_val.npz") as z:
        assert int(z["views"]) == 1  # report-only photos: the plain view, never trained on
    assert history["loss"][-1] < history["loss"][0]
    assert json.loads((root / "run" / "config.json").read_text())["frozen_encoder"] is True


@needs_data
def test_assembled_net_is_the_imagenet_encoder_under_the_trained_readout(run):
    import keras

    from training.prior_select import prior_map
    from training.saliency_frozen import assemble, encoder, load_readout

    root, _ = run
    pmap = prior_map(root / "run", "learned")
    net = assemble(root / "run", pmap, BACKBONE)
    assert len(net.inputs) == 1
    from skimage import data

    canvas = letterbox(data.astronaut())[0][None]
    readout = load_readout(root / "run")
    taps = encoder(readout_config(root), BACKBONE).predict(canvas, verbose=0)
    head = keras.Model(readout.inputs, readout.get_layer("head").output)
    taps["dataset"] = np.zeros((1, 2), np.float32)
    expected = 1 / (1 + np.exp(-(np.asarray(head.predict(taps, verbose=0))[0, ..., 0] + pmap)))
    got = np.asarray(net(canvas, training=False))[0, ..., 0]
    assert np.allclose(got, expected, atol=1e-4)


def readout_config(root):
    from training.saliency_frozen import run_config

    return run_config(root / "run").net


@needs_data
def test_assembled_net_exports_to_tflite_with_parity(run, tmp_path):
    from skimage import data

    from autocrop.preprocess import unletterbox
    from autocrop.saliency import SALIENCY_OUTPUT, TFLiteModel
    from model_export.quantize import RECIPES, convert, pearson, write
    from training.prior_select import prior_map
    from training.saliency_frozen import assemble

    root, _ = run
    net = assemble(root / "run", prior_map(root / "run", "learned"), BACKBONE)
    photos = [getattr(data, n)()[..., :3] for n in ("astronaut", "chelsea", "coffee")]
    canvases = [letterbox(p) for p in photos]
    path = write(tmp_path / "frozen_f16.tflite",
                 convert(net, RECIPES["float16"], lambda: ([c[None]] for c, _ in canvases)))
    runner = TFLiteModel(path)
    for photo, (canvas, box) in zip(photos, canvases):
        ref = unletterbox(np.asarray(net(canvas[None], training=False))[0, ..., 0], box, *photo.shape[:2])
        out = runner(canvas[None])
        raw = out.get(SALIENCY_OUTPUT, next(iter(out.values())))[0, ..., 0]
        assert pearson(ref, unletterbox(raw, box, *photo.shape[:2])) >= 0.99


@needs_data
def test_emod_is_a_maps_only_set_with_its_own_prior(tmp_path):
    """`--emod` caches EMOd's photos and maps as the set 'emod' (no fixation points: the
    cached fixation channel is empty), and a readout trained on osie,eyecrowd,emod has a
    third prior that EMOd's photos alone move."""
    from training.saliency_frozen import FrozenConfig, build_cache, load_readout, train
    from training.saliency_model import SaliencyNetConfig, learned_prior_maps

    net = SaliencyNetConfig(priors=3)
    emod = DATA / "saliency" / "emod_fdm"
    build_cache(DATA, tmp_path / "cache", net, views=2, backbone=BACKBONE, limit=4, emod=emod)
    with np.load(tmp_path / "cache" / "emod_train.npz") as z:
        assert int(z["views"]) == 2 and z["targets"].shape == (8, 64, 64, 2)
        assert list(z["names"]) == sorted(z["names"]) and len(z["names"]) == 4
        density, points = z["targets"][..., 0].astype(np.float32), z["targets"][..., 1]
        assert not points.any()  # maps only
        assert np.all(density.sum(axis=(1, 2)) > 0) and np.isfinite(density).all()
    with np.load(tmp_path / "cache" / "emod_val.npz") as z:
        assert int(z["views"]) == 1 and len(z["names"]) == 4
    cfg = FrozenConfig(sets=("osie", "eyecrowd", "emod"), epochs=2, batch_size=4, lr=3e-3, views=2, net=net)
    history = train(cfg, tmp_path / "cache", tmp_path / "run", verbose=0)
    assert all(np.isfinite(history["loss"]))
    maps = learned_prior_maps(load_readout(tmp_path / "run"))
    assert maps.shape == (3, 64, 64) and np.abs(maps[2]).max() > 0
    assert not np.allclose(maps[2], maps[0]) and not np.allclose(maps[2], maps[1])


def test_naming_emod_without_its_folder_is_a_usage_error(tmp_path):
    from training.saliency_frozen import main

    with pytest.raises(SystemExit) as stop:
        main(["--sets", "osie,emod", "--cache", str(tmp_path), "--out", str(tmp_path / "run")])
    assert stop.value.code == 2
