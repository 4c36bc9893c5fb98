"""Per composite and ratio: score terms of the best window keeping each face (a minus b),
and which face the engine keeps with each term removed (same windows, same tie rule).
Same trials, layouts and composites as `training.fairness_audit --seed S --pairs N`; with
--placebo, one group's faces split in two halves and paired against each other instead."""
import json, sys
import numpy as np, cv2
from pathlib import Path
from autocrop import CropOptions
from autocrop.engine import decode_for, prepare_photo
from autocrop.candidates import propose_windows, measure_windows
from autocrop.scoring import composition_terms, total_score
from autocrop.ranker_choice import select_ranker
from autocrop.ranking import order_by, break_face_ties
from autocrop.face_rule import face_importance
from training.fairness_audit import *
from training.fairness_audit import Models

PLACEBO = "--placebo" in sys.argv  # one group's faces against each other: any departure is noise
ARGS = [a for a in sys.argv[1:] if a != "--placebo"]
N, SEED, OUT = int(ARGS[0]), int(ARGS[1]), ARGS[2]
BOXES = ARGS[3] if len(ARGS) > 3 else "yunet"
import autocrop.engine as _engine
_real_detect = _engine.detect_faces
def _detect(rgb, detector, options, saliency=None):
    f = _real_detect(rgb, detector, options, saliency)
    if BOXES == "yunet" or len(f) != 2:
        return f
    f = f.astype(np.float64).copy()
    cx, cy = f[:, 0] + f[:, 2] / 2, f[:, 1] + f[:, 3] / 2
    if BOXES == "equal":   # both faces get the mean box size and confidence, centres kept
        w, h, sc = np.full(2, f[:, 2].mean()), np.full(2, f[:, 3].mean()), np.full(2, f[:, 4].mean())
    else:                  # "swap": each face gets the other's box size and confidence
        w, h, sc = f[::-1, 2], f[::-1, 3], f[::-1, 4]
    return np.stack([cx - w / 2, cy - h / 2, w, h, sc], axis=1).astype(np.float32)
_engine.detect_faces = _detect
root = Path("../shared/data/faces_demographic")
records = load_faces(root)
rng = np.random.default_rng(SEED)
if PLACEBO:
    # One group's adult faces split at random into two halves, "x1" (relabelled white) and
    # "x2" (relabelled asian), paired as the audit pairs two groups.
    ONLY = {"black1 vs black2", "indian1 vs indian2"}
    trials = []
    for g in ("black", "indian"):
        mem = [r for r in adults(records) if r.race == g]
        half = set(rng.permutation(len(mem))[: len(mem) // 2].tolist())
        recs = [FaceRecord(r.file, r.age, r.gender, "white" if i in half else "asian") for i, r in enumerate(mem)]
        for a, b in matched_pairs(recs, GroupPair("race", "white", "asian"), N, rng):
            trials.append((GroupPair("race", g + "1", g + "2"), a, b))
else:
    ONLY = {"white vs black", "black vs indian", "asian vs indian"}
    trials = [(gp, a, b) for gp in default_pairs() for a, b in matched_pairs(records, gp, N, rng)]
photos = sorted(Path("../shared/data/photos").rglob("*.jpg"))
import os
# extra engine options, as the audit's --set: SET='face_saliency_even=0 weight_edges=0'
opts = CropOptions(ratios=RATIOS, **{k: float(v) for k, v in (kv.split('=') for kv in os.environ.get('SET', '').split())})
print("ranker", select_ranker(opts).name, file=sys.stderr)
models = Models.load()
rng = np.random.default_rng(SEED)
DROP = ["saliency", "head_margins_sliced", "edges", "faces_kept_whole", "position", "area"]
out = []
# The audit's own composites (training.fairness_audit.composites), in its order.
for i, gp, a, b, swap, layout, rgb, tiles in composites(root, trials, photos, SEED, ONLY):
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    dec = decode_for(png.tobytes(), opts)
    photo, sal = prepare_photo(dec, opts, models.saliency, models.detector)
    pf = photo.faces
    # which detected face is a's / b's (centre in core)
    core = core_of(tiles * np.array([dec.width / layout.width, dec.height / layout.height] * 2))
    side_of = []
    for fx in pf:
        cx, cy = fx[0] + fx[2] / 2, fx[1] + fx[3] / 2
        side_of.append("a" if core[0, 0] <= cx <= core[0, 2] and core[0, 1] <= cy <= core[0, 3] else
                       "b" if core[1, 0] <= cx <= core[1, 2] and core[1, 1] <= cy <= core[1, 3] else "-")
    imp = face_importance(pf, opts.face_importance_tie) if len(pf) else np.zeros(0)
    imp0 = face_importance(pf, 0.0) if len(pf) else np.zeros(0)
    tile_area = (tiles[0, 2] - tiles[0, 0]) * (tiles[0, 3] - tiles[0, 1]) * dec.width / layout.width * dec.height / layout.height
    det = {sd: [float(pf[k, 2] * pf[k, 3] / tile_area), float(pf[k, 4]), float(imp0[k]), float(imp[k])]
           for k, sd in enumerate(side_of) if sd in "ab"}
    for label, ratio in zip(opts.ratios, opts.ratio_values):
        win = propose_windows(dec.width, dec.height, ratio, opts)
        feat = measure_windows(win, photo.index, photo.faces, dec.width, dec.height, opts, heads_of_allowed_only=True)
        terms = composition_terms(feat, opts)
        sx, sy = layout.width / dec.width, layout.height / dec.height
        c = core_of(tiles)
        x, y, w, h = win.x * sx, win.y * sy, win.w * sx, win.h * sy
        iw = np.clip(np.minimum((x + w)[:, None], c[None, :, 2]) - np.maximum(x[:, None], c[None, :, 0]), 0, None)
        ih = np.clip(np.minimum((y + h)[:, None], c[None, :, 3]) - np.maximum(y[:, None], c[None, :, 1]), 0, None)
        k2 = iw * ih / ((c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1]))[None] >= KEPT_SHARE
        kept = np.where(k2[:, 0] & k2[:, 1], "both", np.where(k2[:, 0], "a", np.where(k2[:, 1], "b", "none")))
        def winner(score):
            order = break_face_ties(order_by(score, feat.feasible, 64), score, win, feat, opts)
            return str(kept[order[0]]) if len(order) else "none"
        score = total_score(terms)
        rec = dict(pair=gp.label, a=a.file, b=b.file, swap=swap, kind=layout.kind, bg=layout.background, ratio=label,
                   det=det, engine=winner(score))
        best = {}
        for sd in "ab":
            m = feat.feasible & (kept == sd)
            if m.any():
                best[sd] = int(np.flatnonzero(m)[np.argmax(score[m])])
        if len(best) == 2:
            rec["diff"] = {k: float(v[best["a"]] - v[best["b"]]) for k, v in terms.items()}
            rec["diff"]["total"] = float(score[best["a"]] - score[best["b"]])
        rec["drop"] = {t: winner(score - terms[t]) for t in DROP}
        rec["only_sal"] = winner(terms["saliency"] + 0 * score)
        out.append(rec)
    if (i + 1) % 50 == 0:
        print(i + 1, len(out), file=sys.stderr, flush=True)
Path(OUT).write_text(json.dumps(out))
