import json, sys, numpy as np
PAIRS = None
for path in sys.argv[1:]:
    rows = json.load(open(path)); print("==", path.split("/")[-1]); PAIRS = list(dict.fromkeys(r["pair"] for r in rows))
    for p in PAIRS:
        sub = [r for r in rows if r["pair"] == p and r["engine"] in "ab"]
        faces = {}
        for r in sub:
            ka = 1.0 if r["engine"] == "a" else 0.0
            faces.setdefault(("a", r["a"]), []).append(ka); faces.setdefault(("b", r["b"]), []).append(1 - ka)
        keys = list(faces); g = np.array([k[0] == "a" for k in keys]); k = np.array([np.mean(faces[x]) for x in keys])
        n = np.array([len(faces[x]) for x in keys])
        obs = k[g].mean() - k[~g].mean()
        rng = np.random.default_rng(0); sims = np.empty(20000)
        for i in range(len(sims)):
            pg = rng.permutation(g); sims[i] = k[pg].mean() - k[~pg].mean()
        # concentration: departure with the m most-kept/least-kept faces' trials removed
        share = np.mean([r["engine"] == "a" for r in sub])
        order = np.argsort(-(k - 0.5) * np.where(g, 1, -1) * n)  # faces pushing toward the departure's side, by weight
        sign = np.sign(share - 0.5)
        top = [keys[j] for j in order[:10]] if sign > 0 else [keys[j] for j in np.argsort((k - 0.5) * np.where(g, 1, -1) * n)[:10]]
        drop = {x[1] for x in top}
        rest = [r for r in sub if r["a"] not in drop and r["b"] not in drop]
        print(f"  {p}: {g.sum()} a-faces, {(~g).sum()} b-faces; per-face keep rate a {k[g].mean():.3f} b {k[~g].mean():.3f}; "
              f"face-label permutation p = {np.mean(np.abs(sims) >= abs(obs)):.3f}; crops {100*share:.1f}% -> {100*np.mean([r['engine']=='a' for r in rest]):.1f}% "
              f"without the 10 faces pushing most ({len(rest)} of {len(sub)} crops left); faces always/never kept: {np.mean((k==0)|(k==1)):.2f}")
