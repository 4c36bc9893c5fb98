import json, sys
import numpy as np
# run from the repository root with PYTHONPATH=.:layers
from training.fairness_audit import bootstrap_by_face
rows = json.load(open(sys.argv[1]))
PAIRS = list(dict.fromkeys(r["pair"] for r in json.load(open(sys.argv[1]))))
def share(sub, key):
    d = [(r["a"], r["b"], key(r)) for r in sub]
    d = [(a, b, v) for a, b, v in d if v in ("a", "b")]
    m, lo, hi = bootstrap_by_face([x[0] for x in d], [x[1] for x in d], np.array([x[2] == "a" for x in d], float))
    return f"{100*m:.1f} [{100*lo:.1f}, {100*hi:.1f}] n={len(d)}"
for p in PAIRS:
    sub = [r for r in rows if r["pair"] == p]
    print(f"== {p}: {len(sub)} crops")
    print("  engine            ", share(sub, lambda r: r["engine"]))
    for t in ["saliency", "head_margins_sliced", "edges", "faces_kept_whole", "position", "area"]:
        print(f"  without {t:10s}", share(sub, lambda r, t=t: r["drop"][t]))
    print("  saliency term only", share(sub, lambda r: r["only_sal"]))
    # term differences a - b (positive favours group a)
    dd = [r for r in sub if "diff" in r]
    for t in ["saliency", "head_margins_sliced", "edges", "faces_kept_whole", "position", "area", "total"]:
        v = np.array([r["diff"][t] for r in dd])
        m, lo, hi = bootstrap_by_face([r["a"] for r in dd], [r["b"] for r in dd], v)
        print(f"  diff {t:9s} mean {m:+.4f} [{lo:+.4f}, {hi:+.4f}]  mean|d| {np.abs(v).mean():.4f}  favours a {np.mean(v>1e-9):.3f} b {np.mean(v<-1e-9):.3f}")
    # decisive: which terms alone flip the decision (engine winner changes when dropped)
    for t in ["saliency", "head_margins_sliced", "edges", "faces_kept_whole", "position", "area"]:
        fl = [r for r in sub if r["engine"] in "ab" and r["drop"][t] in "ab" and r["drop"][t] != r["engine"]]
        na = sum(r["engine"] == "a" for r in fl); print(f"  dropping {t:9s} flips {len(fl)} crops: {na} a->b, {len(fl)-na} b->a")
    # detections
    for sd in "ab":
        v = np.array([r["det"][sd] for r in sub if sd in r["det"]])
        print(f"  det {sd}: box/tile {v[:,0].mean():.3f} conf {v[:,1].mean():.3f} imp0 {v[:,2].mean():.0f} imp {v[:,3].mean():.0f}")
    both = [r for r in sub if "a" in r["det"] and "b" in r["det"]]
    eq = np.mean([abs(r["det"]["a"][3] - r["det"]["b"][3]) < 1e-6 * r["det"]["a"][3] for r in both])
    hi_a = np.mean([r["det"]["a"][3] > r["det"]["b"][3] * (1 + 1e-6) for r in both])
    print(f"  importance tied {eq:.3f}, a more important {hi_a:.3f}, b more {1-eq-hi_a:.3f}")
    # sign-flip permutation test at pair level (both renderings, all ratios of a pair of faces flip together)
    keys = {}
    for r in sub:
        if r["engine"] in "ab":
            keys.setdefault((r["a"], r["b"], r["kind"], r["bg"]), []).append(r["engine"] == "a")
    # note: same (a,b) may repeat; cluster on (a,b,layout)
    cl = np.array([np.sum(np.array(v) - 0.5) for v in keys.values()]); n = sum(len(v) for v in keys.values())
    obs = cl.sum() / n
    rng = np.random.default_rng(0); sims = (rng.choice([-1, 1], size=(20000, len(cl))) @ cl) / n
    print(f"  sign-flip test (cluster = face pair x layout, {len(cl)} clusters): departure {100*obs:+.1f} pts, p = {np.mean(np.abs(sims) >= abs(obs)):.3f}")
    # per a-face cluster
    ka = {}
    for r in sub:
        if r["engine"] in "ab": ka.setdefault(r["a"], []).append(r["engine"] == "a")
    cl = np.array([np.sum(np.array(v) - 0.5) for v in ka.values()])
    sims = (rng.choice([-1, 1], size=(20000, len(cl))) @ cl) / n
    print(f"  sign-flip test (cluster = group-a face, {len(cl)} clusters): p = {np.mean(np.abs(sims) >= abs(obs)):.3f}")
