"""A few real training steps on a handful of real photos: the loss must fall; the CLI must run."""

import json

import cv2
import keras
import numpy as np
import pytest

from tests.shared_data import DATA, needs_data

from autocrop.preprocess import letterbox
from training.backbone import DEFAULT_WEIGHTS, load_torchvision_weights
from training.datasets import DEFAULT_DATA_ROOT, load_saliency_sets
from training.saliency_model import inference_net, learned_prior_maps
from training.saliency import net_config, TrainConfig, cache_sample, load_trained, main, make_example
from training.saliency_model import (SaliencyLoss, build_saliency_net, cc_score, kl_loss,
                                     nss_score, set_backbone_trainable)

pytestmark = pytest.mark.skipif(not (DEFAULT_DATA_ROOT / "saliency").exists(),
                                reason="needs ../shared/data")


@pytest.fixture(scope="module")
def samples():
    sets = load_saliency_sets(DEFAULT_DATA_ROOT)
    records = sets["osie"][0][:4] + sets["eyecrowd"][0][:4]
    return [cache_sample(r) for r in records]


def test_loss_terms_known_answers():
    density = np.zeros((1, 8, 8, 1), np.float32)
    density[0, 2, 3, 0] = 1.0
    perfect = density + 1e-3
    flat = np.full_like(density, 0.5)
    assert float(kl_loss(density, perfect)[0]) < 0.1 < float(kl_loss(density, flat)[0])
    assert float(cc_score(density, perfect)[0]) == pytest.approx(1.0, abs=1e-3)
    assert float(nss_score(density, perfect)[0]) > 5
    assert abs(float(cc_score(density, flat)[0])) < 1e-3


def test_examples_align_fixations_with_density(samples):
    cfg = TrainConfig()
    for i, s in enumerate(samples):
        for rng in (None, np.random.default_rng(i)):
            image, target = make_example(s, rng, cfg)
            assert image.shape == (256, 256, 3) and target.shape == (64, 64, 2)
            density, fixmap = target[..., 0], target[..., 1]
            assert fixmap.sum() > 10
            # fixations sit where the blurred density is high
            assert density[fixmap > 0].mean() > 2 * density.mean()


def test_a_few_steps_reduce_the_loss(samples):
    keras.utils.set_random_seed(0)
    model = build_saliency_net()
    load_torchvision_weights(model, DEFAULT_WEIGHTS)
    set_backbone_trainable(model, False)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=SaliencyLoss())
    cfg = TrainConfig()
    pairs = [make_example(s, None, cfg) for s in samples]
    x = np.stack([p[0] for p in pairs])
    y = np.stack([p[1] for p in pairs])
    before = float(model.evaluate(x, y, verbose=0))
    for _ in range(8):
        model.train_on_batch(x, y)
    after = float(model.evaluate(x, y, verbose=0))
    assert after < before - 0.1, (before, after)


def test_training_cli_saves_a_loadable_run(tmp_path):
    out = tmp_path / "run"
    main(["--out", str(out), "--max-images", "8", "--epochs", "2", "--epochs-frozen", "1",
          "--batch-size", "4", "--per-dataset-priors"])
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 2
    model = load_trained(out)
    # One learned prior per training set (UNISAL): the training net takes the photo's set.
    image = np.zeros((1, 256, 256, 3), np.float32)
    pred = np.asarray(model({"image": image, "dataset": np.eye(2, dtype=np.float32)[:1]}))
    assert pred.shape == (1, 64, 64, 1) and 0 <= pred.min() <= pred.max() <= 1
    maps = learned_prior_maps(model)
    assert maps.shape == (2, 64, 64)
    # The shipped net is image-only, with the run-time prior map in place of the per-set ones.
    shipped = inference_net(model, net_config(out), maps.mean(axis=0))
    assert len(shipped.inputs) == 1
    other = np.asarray(shipped(image))
    assert other.shape == (1, 64, 64, 1)
    # Leave-one-dataset-out prior selection scores a fine-tuned run on whole photos: its
    # content logits plus the run-time prior map are what the image-only net outputs.
    from training.prior_select import candidate_scores, full_net_logits, is_full_run

    assert is_full_run(out)
    records = load_saliency_sets(DEFAULT_DATA_ROOT, ("eyecrowd",))["eyecrowd"][1][:2]
    z = full_net_logits(model, records)
    canvas = np.stack([letterbox(r.load_rgb())[0] for r in records])
    direct = np.asarray(shipped(canvas))[..., 0]
    np.testing.assert_allclose(1 / (1 + np.exp(-(z + maps.mean(axis=0)))), direct, atol=1e-4)
    scores = candidate_scores(out, DEFAULT_DATA_ROOT, "eyecrowd", "val", None, exponents=(0.0, 1.0),
                              kinds=("learned", "flat"), face_weights=(0.0,), limit=2)
    assert sorted(scores) == ["flat^0+faces*0", "flat^1+faces*0", "learned^0+faces*0", "learned^1+faces*0"]
    assert all(len(v) == 2 and all(-1 <= c <= 1 for c in v) for v in scores.values())


def test_distillation_blends_the_teachers_map_into_the_target(samples, tmp_path):
    from autocrop.saliency import DEFAULT_SALIENCY_MODEL
    from training.fixations import density_map
    from training.saliency import EnsembleTeacher, blend_target

    density = np.zeros((10, 10), np.float32)
    density[2, 2] = 4.0
    teacher_map = np.zeros((10, 10), np.float32)
    teacher_map[7, 7] = 0.5
    mixed = blend_target(density, teacher_map, 0.25)
    assert mixed.sum() == pytest.approx(1.0)
    assert mixed[2, 2] == pytest.approx(0.75) and mixed[7, 7] == pytest.approx(0.25)

    # The real shipped model as the teacher: the blended target is a distribution between
    # people's density and the model's map, and training with it still lowers the loss.
    teacher = EnsembleTeacher(((str(DEFAULT_SALIENCY_MODEL), 2.0),))
    record = load_saliency_sets(DEFAULT_DATA_ROOT, ("osie",))["osie"][0][0]
    rgb = record.load_rgb()
    taught = teacher(rgb)
    assert taught.shape == rgb.shape[:2] and taught.max() == pytest.approx(1.0)
    people = density_map(record.fixations, record.height, record.width)
    half = cache_sample(record, 0, teacher, 0.5).density
    none = cache_sample(record, 0, teacher, 0.0).density
    cc = lambda a, b: float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    small = lambda m: cv2.resize(m, half.shape[::-1], interpolation=cv2.INTER_AREA)
    assert cc(half, small(taught)) > cc(none, small(taught))
    assert cc(half, small(people)) > cc(small(taught), small(people))
    with pytest.raises(ValueError):
        EnsembleTeacher(())
    # Test-time flipping: the teacher's map of the mirrored photo is its map, mirrored.
    flipped = EnsembleTeacher(((str(DEFAULT_SALIENCY_MODEL), 1.0),), flip=True)
    both = flipped(rgb)
    np.testing.assert_allclose(both, flipped(np.ascontiguousarray(rgb[:, ::-1]))[:, ::-1], atol=1e-5)
    assert not np.allclose(both, taught, atol=1e-3)

    out = tmp_path / "distilled"
    main(["--out", str(out), "--max-images", "6", "--epochs", "2", "--epochs-frozen", "1",
          "--batch-size", "3", "--teacher", f"{DEFAULT_SALIENCY_MODEL}:1", "--distill", "0.5"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["distill"] == 0.5 and cfg["teachers"] == [[str(DEFAULT_SALIENCY_MODEL), 1.0]]
    history = json.loads((out / "history.json").read_text())
    assert history["loss"][1] < history["loss"][0]
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--distill", "0.5"])


def test_text_channel_blob_is_blurred_peak_one_or_nothing():
    from research.text_channel import text_blob

    prob = np.zeros((60, 80), np.float32)
    assert not text_blob(prob).any()
    prob[10:14, 20:50] = 0.9  # one line of text
    blob = text_blob(prob)
    assert blob.max() == pytest.approx(1.0)
    y, x = np.unravel_index(blob.argmax(), blob.shape)
    assert 10 <= y <= 14 and 20 <= x <= 50 and blob[50, 5] < 0.05


def test_unlabelled_photos_share_keeps_every_source(tmp_path):
    """A half of the unlabelled photos is half of each source, the same draw every time; all
    of them is every photo in the manifest."""
    rows = ["source,name,width,height,sha1"]
    for source, count in (("a", 10), ("b", 4), ("c", 1)):
        (tmp_path / source).mkdir()
        rows += [f"{source},{i:02d}.jpg,8,8,x" for i in range(count)]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    from training.saliency import unlabelled_photos

    every = unlabelled_photos(tmp_path)
    assert len(every) == 15 and len(set(every)) == 15
    half = unlabelled_photos(tmp_path, 0.5, seed=3)
    by_source = {s: sum(p.parent.name == s for p in half) for s in "abc"}
    assert by_source == {"a": 5, "b": 2, "c": 0} or by_source == {"a": 5, "b": 2, "c": 1}
    assert half == unlabelled_photos(tmp_path, 0.5, seed=3)
    assert set(half) <= set(every)


def test_maps_only_samples_take_the_teachers_map_and_carry_no_fixations(tmp_path):
    """An unlabelled photo's target is the teacher's map (normalised), with no fixations, so
    the NSS term is 0 for it, and the loss stays finite; EMOd maps split every 10th by name."""
    from training.saliency import cache_map_sample, emod_maps, read_density

    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[20:40, 50:70] = 255
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), rgb)
    with pytest.raises(ValueError):
        cache_map_sample(path, None)
    teacher = lambda image: (image.mean(axis=2) > 128).astype(np.float32)  # noqa: E731
    sample = cache_map_sample(path, None, teacher)
    assert sample.fixations.shape == (0, 2)
    assert sample.density.min() >= 0 and sample.density.sum() > 0  # the losses normalise it
    ys, xs = np.nonzero(sample.density > sample.density.max() / 2)
    h, w = sample.density.shape
    assert 0.55 < xs.mean() / w < 0.85 and 0.3 < ys.mean() / h < 0.7
    image, target = make_example(sample, None, TrainConfig())
    assert target[..., 1].sum() == 0
    loss = SaliencyLoss()(target[None], np.full(target.shape[:2] + (1,), 0.5, np.float32)[None])
    assert np.isfinite(float(loss))
    noise = np.random.default_rng(0).random((1, *target.shape[:2], 1)).astype(np.float32)
    assert float(nss_score(target[None, ..., 1:2], noise)[0]) == 0.0

    root = DEFAULT_DATA_ROOT / "saliency" / "emod_fdm"
    if root.is_dir():
        train, val = emod_maps(root)
        assert len(train) + len(val) == 189 and len(val) == 19
        assert not {p for p, _ in train} & {p for p, _ in val}
        density = read_density(val[0][1])
        assert density.shape == (192, 256) and density.sum() == pytest.approx(1.0, rel=1e-4)


def test_maps_only_options_refuse_what_they_cannot_do(tmp_path):
    """A folder without EMOd's layout is an error (not a run that silently trains without
    it); per-dataset priors cannot take unlabelled photos (they belong to no set); unlabelled
    photos need a teacher."""
    from training.saliency import emod_maps

    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError):
        emod_maps(tmp_path)
    cv2.imwrite(str(tmp_path / "images" / "1.jpg"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FileNotFoundError):
        emod_maps(tmp_path)  # a photo without its map
    for argv in (["--per-dataset-priors", "--unlabelled", str(tmp_path), "--teacher", "t.tflite",
                  "--distill", "0.5"],
                 ["--unlabelled", str(tmp_path)],
                 ["--unlabelled", str(tmp_path), "--unlabelled-share", "0"]):
        with pytest.raises(SystemExit) as stop:
            main(["--out", str(tmp_path / "run"), *argv])
        assert stop.value.code == 2


@needs_data
def test_emod_with_per_dataset_priors_is_a_third_set_with_its_own_prior(tmp_path):
    """`--per-dataset-priors --emod` trains three priors (OSIE, EyeCrowd, EMOd): EMOd's
    photos move EMOd's prior and no other set's, so its observers' centre bias is not
    learned as another set's (or as content)."""
    out = tmp_path / "run"
    main(["--out", str(out), "--max-images", "4", "--epochs", "1", "--epochs-frozen", "1",
          "--batch-size", "4", "--per-dataset-priors", "--emod", str(DATA / "saliency" / "emod_fdm")])
    assert json.loads((out / "config.json").read_text())["net"]["priors"] == 3
    maps = learned_prior_maps(load_trained(out))
    assert maps.shape == (3, 64, 64)
    # The first four training records are OSIE's and the first four EMOd photos join them:
    # the OSIE and EMOd priors trained, EyeCrowd's (no photo in this run) is still its zeros.
    assert np.abs(maps[0]).max() > 0 and np.abs(maps[2]).max() > 0
    assert np.abs(maps[1]).max() == 0
    assert not np.allclose(maps[0], maps[2])
