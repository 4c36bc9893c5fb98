"""Attacks on the split-half's "map alone" and "engine on people" rows (training.ceiling).

Small hand-made photos of odd sizes and observer counts: the chooser of the engine-on-people
row must see half A's density (the smaller half), at the photo's size, and every row must be
scored by of_oracle on half B's fixations inside the image, as the existing rows are.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from autocrop import Box, CropOptions
from training import ceiling
from training.ceiling import format_split_half, saliency_only_boxes, split_half_photo, summarise_split_half
from training.crop_eval import RATIOS, MapSaliency, centred_boxes, of_oracle, point_integral
from training.fixations import density_map

from tests.shared_data import DATA, needs_data



def spread_observers(n: int, w: int, h: int, empty: int | None = None) -> list[np.ndarray]:
    """`n` observers, each with one fixation at its own spot (far enough apart that the
    densities do not overlap) and fixations outside the image (must count nowhere).
    Observer `empty` has no fixations at all."""
    per = []
    for i in range(n):
        t = (i + 0.5) / n
        spot = (t * (w - 1), h / 2) if w >= h else (w / 2, t * (h - 1))
        outside = [(-3.0, 1.0), (w + 2.0, 0.0), (1.0, h + 5.0), (float("nan"), 2.0)]
        pts = np.array([spot, *outside], np.float32)
        per.append(np.zeros((0, 2), np.float32) if i == empty else pts)
    return per


def inside(points: np.ndarray, w: int, h: int) -> np.ndarray:
    p = np.asarray(points, np.float64).reshape(-1, 2)
    ok = np.isfinite(p).all(1) & (p[:, 0] >= -0.5) & (p[:, 0] < w - 0.5) & (p[:, 1] >= -0.5) & (p[:, 1] < h - 0.5)
    return p[ok]


CASES = [  # observers, width, height, an observer with no fixations
    (2, 33, 17, None),
    (3, 17, 33, None),
    (3, 20, 300, None),
    (4, 300, 20, 1),
    (5, 160, 120, None),
    (6, 160, 120, 2),
]


@pytest.mark.parametrize("n, w, h, empty", CASES)
def test_engine_on_people_sees_half_a_and_every_row_is_scored_on_half_b(n, w, h, empty):
    per = spread_observers(n, w, h, empty)
    spots = [inside(p, w, h) for p in per]
    model = np.random.default_rng(7).random((h, w)).astype(np.float32)  # not anybody's density
    engine = centred_boxes(w, h)
    seen: list[np.ndarray] = []

    def chooser(density):
        seen.append(np.array(density, copy=True))
        return saliency_only_boxes(density, w, h)

    seeds = (0, 1, 2, 3)
    sums = split_half_photo(per, w, h, model, engine, seeds=seeds, engine_on=chooser)
    assert len(seen) == len(seeds)
    map_boxes = saliency_only_boxes(model, w, h)
    halves_a = []
    for k, dens in enumerate(seen):
        assert dens.shape == (h, w)  # the photo's size
        assert not np.allclose(dens, model)
        # A = the observers whose spot the chooser's density covers.
        a = [i for i, s in enumerate(spots) if len(s) and dens[int(round(s[0, 1])), int(round(s[0, 0]))] > 1e-3 * max(dens.max(), 1e-12)]
        b = [i for i, s in enumerate(spots) if len(s) and i not in a]
        nonempty = sum(1 for s in spots if len(s))
        assert 1 <= len(a) + (empty is not None) and len(a) <= n // 2  # A is the smaller half
        assert len(a) + len(b) == nonempty and b, "B must hold the rest of the observers"
        pts_a = np.concatenate([spots[i] for i in a] or [np.zeros((0, 2))]).astype(np.float32)
        pts_b = np.concatenate([spots[i] for i in b]).astype(np.float32)
        # Exactly A's density (inside points only), not B's and not everybody's.
        np.testing.assert_allclose(dens, density_map(pts_a, h, w), atol=1e-7)
        halves_a.append(tuple(a))
        # Every row of this seed scored per box by of_oracle on B's fixations inside the image.
        judge = point_integral(pts_b, w, h)
        four = slice(4 * k, 4 * k + 4)
        assert sums["crop_engine_people"][four] == [of_oracle(judge, bx) for bx in saliency_only_boxes(dens, w, h)]
        assert sums["crop_map"][four] == [of_oracle(judge, bx) for bx in map_boxes]
        assert sums["crop_people"][four] == [of_oracle(judge, bx) for bx in saliency_only_boxes(density_map(pts_a, h, w), w, h)]
        assert sums["crop_centre"][four] == [of_oracle(judge, bx) for bx in centred_boxes(w, h)]
        assert sums["crop_engine"][four] == [of_oracle(judge, bx) for bx in engine]
    for row in ("crop_engine", "crop_people", "crop_centre", "crop_map", "crop_engine_people"):
        assert len(sums[row]) == 4 * len(seeds)
    if n >= 3:
        assert len(set(halves_a)) > 1, "seeds should split the observers differently"


def test_rows_are_deterministic_across_calls_and_independent_of_the_chooser_row():
    per = spread_observers(7, 160, 120)
    model = np.random.default_rng(3).random((120, 160))

    def chooser(d):
        return saliency_only_boxes(d, 160, 120)

    one = split_half_photo(per, 160, 120, model, centred_boxes(160, 120), seeds=(5, 11, 2**40), engine_on=chooser)
    two = split_half_photo(per, 160, 120, model, centred_boxes(160, 120), seeds=(5, 11, 2**40), engine_on=chooser)
    plain = split_half_photo(per, 160, 120, model, centred_boxes(160, 120), seeds=(5, 11, 2**40))
    assert one == two
    # Asking for the extra row changes nothing else (same halves for the other rows).
    assert {k: v for k, v in one.items() if k != "crop_engine_people"} == plain
    assert "crop_engine_people" not in plain


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.uint8, np.int32])
def test_map_alone_follows_the_map_whatever_its_dtype(dtype):
    w, h = 160, 120
    per = spread_observers(4, w, h)
    truth = density_map(np.concatenate([inside(p, w, h) for p in per]).astype(np.float32), h, w)
    m = (truth / truth.max() * 200).astype(dtype)
    ref = split_half_photo(per, w, h, truth, [], seeds=(0, 1))
    got = split_half_photo(per, w, h, m, [], seeds=(0, 1))
    assert got["crop_map"] == pytest.approx(ref["crop_map"])


def test_gap_figures_use_crop_gap_closeds_formula_even_when_negative_or_above_one():
    sums = {"cc_model": [0.5], "cc_people": [0.8], "cc_centre": [0.4],
            "crop_engine": [0.95], "crop_people": [0.97], "crop_centre": [0.93],
            "crop_map": [0.90, 0.92], "crop_engine_people": [0.99, 0.98, 1.0]}
    out = summarise_split_half(sums)
    centre, people = 0.93, 0.97
    assert out["crop_gap_closed"] == pytest.approx((0.95 - centre) / (people - centre))
    assert out["map_gap_closed"] == pytest.approx((0.91 - centre) / (people - centre))  # negative
    assert out["map_gap_closed"] < 0
    assert out["engine_people_gap_closed"] == pytest.approx((0.99 - centre) / (people - centre))  # above 1
    without = summarise_split_half({k: v for k, v in sums.items() if k != "crop_engine_people"})
    assert "engine_people_gap_closed" not in without and "crop_engine_people" not in without
    table = format_split_half({"x": {**without, "photos": 1.0}})
    assert table.splitlines()[-1].endswith("| - | - |")


def test_gap_figures_when_people_equal_the_centre_do_not_crash_the_summary():
    # DEFECT: two observers who both look at the middle. Every centred box holds all of B's
    # fixations, as do people's boxes: crop_people == crop_centre == 1.0. The gap figures are
    # then 0/0; summarise_split_half divides Python floats and raises ZeroDivisionError,
    # which ends `split_half` (and the whole CLI, every set) instead of reporting nan.
    w, h = 160, 120
    per = [np.array([[80.0, 60.0], [81.0, 61.0]], np.float32) for _ in range(2)]
    sums = split_half_photo(per, w, h, np.ones((h, w), np.float32), centred_boxes(w, h), seeds=(0,),
                            engine_on=lambda d: centred_boxes(w, h))
    assert sums["crop_people"] == sums["crop_centre"] == [1.0] * 4
    out = summarise_split_half(sums)
    for gap in ("crop_gap_closed", "map_gap_closed", "engine_people_gap_closed"):
        assert math.isnan(out[gap])


# ---- split_half itself, on a fake data set (no model, no photos) -------------------------

def fake_set(monkeypatch, tmp_path, sizes):
    """Records of the given (w, h) sizes; the engine spied on."""
    records, observers, calls = [], {}, []
    for k, (w, h) in enumerate(sizes):
        path = tmp_path / f"p{k}.jpg"
        path.write_bytes(f"photo {k}".encode())
        records.append(SimpleNamespace(name=f"p{k}", width=w, height=h, image_path=path))
        observers[f"p{k}"] = spread_observers(5, w, h)

    monkeypatch.setattr(ceiling, "load_saliency_sets", lambda root, names: {names[0]: ([], records)})
    monkeypatch.setattr(ceiling, "observer_fixations", lambda root, name: observers)
    monkeypatch.setattr(ceiling, "decode_for", lambda data, options: SimpleNamespace(data=data))

    def analyse_image(decoded, options, saliency=None):
        k = int(decoded.data.split()[1])
        w, h = sizes[k]
        calls.append((k, options, saliency))
        if isinstance(saliency, MapSaliency):
            boxes = saliency_only_boxes(saliency.density, w, h)
        else:
            boxes = centred_boxes(w, h)
        model = np.random.default_rng(k).random((h // 2 + 1, w // 2 + 1)).astype(np.float32)
        return SimpleNamespace(saliency=model, crops=[SimpleNamespace(box=b) for b in boxes])

    monkeypatch.setattr(ceiling, "analyse_image", analyse_image)
    return records, observers, calls


def test_split_half_gives_the_engine_a_density_at_each_photos_size_with_the_same_options(monkeypatch, tmp_path):
    sizes = [(33, 17), (20, 300), (160, 120)]
    records, observers, calls = fake_set(monkeypatch, tmp_path, sizes)
    options = CropOptions(min_scale=0.8)
    out = ceiling.split_half(Path("nowhere"), "mit1003", options, seeds=(0, 1), saliency=object(),
                             engine_on_people=True)
    assert out["photos"] == 3.0
    model_calls = [c for c in calls if not isinstance(c[2], MapSaliency)]
    people_calls = [c for c in calls if isinstance(c[2], MapSaliency)]
    assert [c[0] for c in model_calls] == [0, 1, 2]
    assert [c[0] for c in people_calls] == [0, 0, 1, 1, 2, 2]  # each photo's own decode, per seed
    for k, opts, sal in calls:
        assert opts.min_scale == 0.8 and tuple(opts.ratios) == tuple(RATIOS)
    assert len({id(c[1]) for c in calls}) == 1  # one options object for both rows
    for k, _, sal in people_calls:
        w, h = sizes[k]
        assert sal.density.shape == (h, w)
        # The density is of a strict subset (the smaller half) of the photo's observers.
        spots = [inside(p, w, h)[0] for p in observers[f"p{k}"]]
        covered = [s for s in spots if sal.density[int(round(s[1])), int(round(s[0]))] > 0]
        assert len(covered) == 2
        np.testing.assert_allclose(sal.density, density_map(np.array(covered, np.float32), h, w), atol=1e-7)
    # The fake engine on people boxes = people's boxes, so the two rows must agree.
    assert out["crop_engine_people"] == pytest.approx(out["crop_people"])
    assert out["engine_people_gap_closed"] == pytest.approx(1.0)


def test_split_half_has_no_engine_on_people_row_unless_asked(monkeypatch, tmp_path):
    _, _, calls = fake_set(monkeypatch, tmp_path, [(160, 120)])
    out = ceiling.split_half(Path("nowhere"), "osie", seeds=(0,), saliency=object())
    assert "crop_engine_people" not in out and "engine_people_gap_closed" not in out
    assert "crop_map" in out and "map_gap_closed" in out
    assert not any(isinstance(c[2], MapSaliency) for c in calls)


def test_cli_set_and_engine_on_people_reach_every_set(monkeypatch, capsys):
    got = []

    def fake_split_half(root, name, options, seeds, limit, saliency, engine_on_people):
        got.append((name, options, list(seeds), engine_on_people))
        return {"photos": 1.0, "cc_model": 0.5}

    monkeypatch.setattr(ceiling, "split_half", fake_split_half)
    assert ceiling.main(["--split-half-only", "--sets", "mit1003,osie", "--set", "min_scale=0.8",
                         "--set", "face_small_pass=always", "--engine-on-people", "--seeds", "2"]) == 0
    assert [g[0] for g in got] == ["mit1003", "osie"]
    for _, options, seeds, eop in got:
        assert options.min_scale == 0.8 and options.face_small_pass == "always"
        assert seeds == [0, 1] and eop is True
    got.clear()
    assert ceiling.main(["--split-half-only", "--sets", "eyecrowd"]) == 0
    assert got[0][0] == "eyecrowd" and got[0][3] is False and got[0][1] == CropOptions()
    assert "| eyecrowd (1) |" in capsys.readouterr().out


# ---- one real photo, end to end -----------------------------------------------------------

@needs_data
def test_real_engine_on_people_gets_half_a_density_and_is_deterministic(monkeypatch):
    real = ceiling.analyse_image
    seen = []

    def spy(decoded, options, saliency=None, **kw):
        result = real(decoded, options, saliency=saliency, **kw)
        seen.append((options, saliency, result))
        return result

    monkeypatch.setattr(ceiling, "analyse_image", spy)
    options = CropOptions(min_scale=0.9)
    one = ceiling.split_half(DATA, "mit1003", options, seeds=(0,), limit=1, engine_on_people=True)
    two = ceiling.split_half(DATA, "mit1003", options, seeds=(0,), limit=1, engine_on_people=True)
    assert one == two
    for key in ("crop_map", "map_gap_closed", "crop_engine_people", "engine_people_gap_closed"):
        assert math.isfinite(one[key])
    (m_opts, _, m_res), (p_opts, p_sal, p_res) = seen[:2]
    assert m_opts is p_opts and p_opts.min_scale == 0.9
    assert isinstance(p_sal, MapSaliency)
    record = ceiling.load_saliency_sets(DATA, ("mit1003",))["mit1003"][1][0]
    assert p_sal.density.shape == (record.height, record.width)
    # Not the model's map: the density is zero far from A's fixations, the model's map is not.
    assert not np.allclose(p_res.saliency, m_res.saliency)
    for box in (c.box for c in p_res.crops):
        assert isinstance(box, Box) and box.x + box.w <= record.width and box.y + box.h <= record.height
