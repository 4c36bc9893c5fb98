"""FCDB and GAICD loaders on the real annotations, and on photos generated under their ids."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.crop_datasets import (
    fcdb_preferences,
    gaicd_preferences,
    infer_side,
    load_fcdb_crops,
    load_fcdb_ranking,
    load_fcdb_sliding_windows,
    load_gaicd,
    url_name,
)

CROPS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "crops"
pytestmark = pytest.mark.skipif(not (CROPS / "fcdb").is_dir(), reason="../shared/data/crops not present")


def write_photo(path: Path, width: int, height: int, seed: int = 0) -> None:
    """A JPEG of the given size (a gradient with a bright square, so it is not blank)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    img[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    x, y = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
    img[y : y + height // 4, x : x + width // 4] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def extent(boxes: np.ndarray) -> tuple[int, int]:
    """The smallest photo size holding every (x, y, w, h) box."""
    return int(np.ceil((boxes[:, 0] + boxes[:, 2]).max())), int(np.ceil((boxes[:, 1] + boxes[:, 3]).max()))


# --- FCDB ------------------------------------------------------------------------------------


def test_fcdb_ranking_annotation():
    images = load_fcdb_ranking(CROPS / "fcdb")
    assert len(images) == 3362
    first = images[0]
    assert first.name == "15251367120_9bdca6b5c3_c.jpg" and first.photo_id == 15251367120
    # The file's first pair: crop_0 got 4 votes, crop_1 got 1.
    p = first.pairs[0]
    assert p.preferred.tolist() == [139, 234, 300, 400] and p.other.tolist() == [171, 281, 300, 400]
    assert (p.votes_preferred, p.votes_other) == (4, 1) and p.agreement == pytest.approx(0.8)
    assert all(q.votes_preferred > q.votes_other for im in images for q in im.pairs)
    assert sum(len(im.pairs) for im in images) <= 33620


def test_fcdb_preferences_keep_clear_votes():
    images = load_fcdb_ranking(CROPS / "fcdb")[:50]
    sets = fcdb_preferences(images, min_agreement=0.8)
    for s, im in zip(sets, [im for im in images if any(p.agreement >= 0.8 for p in im.pairs)]):
        assert s.name == im.name and s.source == "fcdb"
        kept = [p for p in im.pairs if p.agreement >= 0.8]
        assert len(s.pairs) == len(kept)
        for (b, w), p in zip(s.pairs, kept):
            assert s.boxes[b].tolist() == p.preferred.tolist()
            assert s.boxes[w].tolist() == p.other.tolist()
        assert np.all((s.weights > 0) & (s.weights <= 1))


def test_fcdb_cropping_sets():
    sets = load_fcdb_crops(CROPS / "fcdb")
    assert len(sets["train"]) == 1369 and len(sets["test"]) == 345
    first = sets["test"][0]
    assert first.crop.tolist() == [3, 130, 797, 279] and first.name == "6931423716_4fb31feac6_c.jpg"


@pytest.mark.parametrize(
    ("sides", "expected"),
    [
        ([400, 480, 560, 640, 720], 800),  # 800 and 801 both fit: Flickr's 800
        ([512, 614, 716, 819, 921], 1024),
        ([340, 408, 475, 544, 612], 680),  # int(0.7 * 680) == 475 in floating point
    ],
)
def test_infer_side(sides, expected):
    assert infer_side(sides) == expected
    with pytest.raises(ValueError):
        infer_side([100, 101])


def test_fcdb_sliding_windows_fit_their_photos():
    photos = load_fcdb_sliding_windows(CROPS / "fcdb")
    assert len(photos) == 345
    test_names = {c.name for c in load_fcdb_crops(CROPS / "fcdb")["test"]}
    for p in photos:
        assert p.name in test_names
        assert p.gt[0] + p.gt[2] <= p.width and p.gt[1] + p.gt[3] <= p.height
        assert (p.windows[:, 0] + p.windows[:, 2]).max() <= p.width
        assert (p.windows[:, 1] + p.windows[:, 3]).max() <= p.height


def test_fcdb_loaders_attach_photos_generated_under_the_ids(tmp_path):
    images = load_fcdb_ranking(CROPS / "fcdb")[:3]
    for i, im in enumerate(images[:2]):
        boxes = np.concatenate([np.stack([p.preferred, p.other]) for p in im.pairs])
        write_photo(tmp_path / url_name(im.url), *extent(boxes), seed=i)
    found = load_fcdb_ranking(CROPS / "fcdb", image_dir=tmp_path)
    assert [f.name for f in found] == [im.name for im in images[:2]]
    rgb = found[0].load_rgb()
    assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
    everything = load_fcdb_ranking(CROPS / "fcdb", image_dir=tmp_path, present_only=False)
    assert len(everything) == 3362 and everything[2].image_path is None
    with pytest.raises(FileNotFoundError):
        everything[2].load_rgb()
    sets = fcdb_preferences(found)
    assert all(s.image_path is not None and s.load_rgb().shape == rgb.shape for s in sets[:1])


# --- GAICD -----------------------------------------------------------------------------------


def test_gaicd_annotations():
    images = load_gaicd(CROPS / "gaicd")
    assert len(images) == 1236
    splits = {s: sum(g.split == s for g in images) for s in ("train", "val", "test")}
    assert splits == {"train": 1000, "val": 36, "test": 200}
    assert sum(len(g.boxes) for g in images) == 106_853  # SOURCE.md
    assert all(54 <= len(g.boxes) <= 90 and len(g.mos) == len(g.boxes) for g in images)
    assert all(((g.mos >= 1) & (g.mos <= 5)).all() for g in images)
    first = images[0]
    assert first.name == "211085.jpg" and first.split == "train"
    # The .mat stores (y1, x1, y2, x2) rows: its first crop is x 43..811, y 35..601.
    assert first.boxes[0].tolist() == [43, 35, 768, 566]


def test_gaicd_mat_agrees_with_the_json_copy():
    """The .mat and bcmi's hcic_image_crop.json ([x1, y1, x2, y2] + score) hold the same crops."""
    crops = json.loads((CROPS / "gaicd" / "hcic_image_crop.json").read_text())
    for g in load_gaicd(CROPS / "gaicd")[::100]:
        entry = crops[g.name]
        theirs = sorted((*b, round(s, 2)) for b, s in zip(entry["bbox"], entry["score"]))
        ours = sorted(
            (int(x), int(y), int(x + w), int(y + h), round(float(s), 2)) for (x, y, w, h), s in zip(g.boxes, g.mos)
        )
        assert ours == theirs


def test_gaicd_preferences_follow_the_scores():
    images = load_gaicd(CROPS / "gaicd")[:20]
    sets = gaicd_preferences(images, min_gap=0.5, max_pairs=50)
    for s, g in zip(sets, images):
        assert s.name == g.name and len(s.pairs) <= 50
        better, worse = g.mos[s.pairs[:, 0]], g.mos[s.pairs[:, 1]]
        assert np.all(better - worse >= 0.5 - 1e-9)
        assert np.all((s.weights > 0) & (s.weights <= 1))


def test_gaicd_loader_finds_photos_in_the_dataset_layout(tmp_path):
    images = load_gaicd(CROPS / "gaicd")
    train = next(g for g in images if g.split == "train")
    test = next(g for g in images if g.split == "test")
    write_photo(tmp_path / "images" / "train" / train.name, *extent(train.boxes))
    write_photo(tmp_path / test.name, *extent(test.boxes), seed=1)  # a flat folder works too
    found = load_gaicd(CROPS / "gaicd", image_dir=tmp_path)
    assert sorted(g.name for g in found) == sorted([train.name, test.name])
    for g in found:
        h, w = g.load_rgb().shape[:2]
        assert (g.boxes[:, 0] + g.boxes[:, 2]).max() <= w and (g.boxes[:, 1] + g.boxes[:, 3]).max() <= h
