"""The face rule, measured for every candidate window at a cost flat in the number of faces.

The rule: a protected face's guard (its box grown to where the head usually is, see
`guard_boxes`) is never sliced: wholly inside the window or wholly outside it. When every
window slices some face, the most important faces stay whole and the others are dropped
whole where they can be. The head (the guard with more room: hair, chin, ears) should be
whole too: how much of each head a window slices is a penalty of the score.

Two implementations of each measure, which agree (tests compare them with each other and
with a plain windows x faces reference):
- dense, for any set of windows (a shortlist, a hand-made window): windows x faces matrices;
- on the window grid (`Windows.grids`: every position of one size is a product of an x
  offset and a y offset), where each relation splits into an x part and a y part:
  "face f inside window (ix, iy)" is "ix in a range and iy in a range" (the axis positions
  are sorted), so each face marks a rectangle of the grid and counts or importance sums over
  faces are difference arrays summed up (an integral image backwards): O(faces + windows)
  instead of windows x faces matrices.
The head cut is not separable; it is measured only on the windows the hard rules allow
(in a crowd a handful, see `head_cuts`). A 12 MP crowd photo with 250 faces and ~45,000
windows over four ratios is measured in tens of milliseconds instead of a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .options import CropOptions
from .types import FaceReport

#: Columns of a face array: x, y, w, h (full-resolution px), score.
FACE_COLUMNS = 5
#: Faces are float boxes and windows integers: touching is not overlapping.
EPS = 1e-6
#: Up to this many window x box pairs the dense matrices are cheaper than the grid's ranges
#: (a photo with a few faces: ~1 ms a ratio saved).
DENSE_CELLS = 250_000
#: A face larger than the largest window is protected by its core: its box shrunk about its
#: centre to this share of the window's width and height.
CORE_SHARE = 0.9


@dataclass(frozen=True, eq=False)
class Grid:
    """Windows of one size: every (x, y) of `px` x `py`, stored from `start`, row-major in y
    (window `start + iy * len(px) + ix` is at (px[ix], py[iy]))."""

    start: int
    px: np.ndarray
    py: np.ndarray
    w: int
    h: int

    @property
    def size(self) -> int:
        return len(self.px) * len(self.py)


def face_importance(faces: np.ndarray, tie: float = 0.0) -> np.ndarray:
    """Importance of each face: its area times the detector's confidence, each raised to that
    of any face at most `tie` (a share) more important.

    Why the tie: the detector's box size and confidence are measurements, and they differ a
    little between groups of people (the fairness audit, docs/fairness.md). Two faces whose
    importances are that close are equally important, so which of them the rule drops, and
    how the score weighs them, must not turn on that small difference. Raising each face to
    the largest importance within `tie` above it keeps the order of faces that differ by
    more (a close-up still beats a face in the background) and makes near-equal ones equal.
    """
    if len(faces) == 0:
        return np.zeros(0)
    raw = faces[:, 2].astype(np.float64) * faces[:, 3] * faces[:, 4]
    if tie <= 0:
        return raw
    ordered = np.sort(raw)
    # For each face, the largest importance <= its own x (1 + tie): itself at least.
    reach = np.searchsorted(ordered, raw * (1 + tie), side="right") - 1
    return np.maximum(raw, ordered[np.clip(reach, 0, len(ordered) - 1)])


def protected_faces(faces: np.ndarray, width: int, height: int, options: CropOptions) -> np.ndarray:
    """The faces the rule protects: those at least `face_min_size` of the long side."""
    if len(faces) == 0:
        return faces.reshape(0, FACE_COLUMNS)
    small = np.minimum(faces[:, 2], faces[:, 3]) < options.face_min_size * max(width, height)
    return faces[~small]


def fit_faces(faces: np.ndarray, max_w: float, max_h: float) -> np.ndarray:
    """Faces with boxes too big for a (max_w x max_h) window shrunk to their core.

    A close-up face taller than a 16:9 window cannot be wholly inside or outside it; rather
    than crop the subject away, the rule then protects the middle of the face (eyes, nose,
    mouth), which the window keeps or leaves whole like any face.
    """
    if len(faces) == 0:
        return faces
    out = faces.copy()
    w = np.minimum(faces[:, 2], CORE_SHARE * max_w)
    h = np.minimum(faces[:, 3], CORE_SHARE * max_h)
    out[:, 0] = faces[:, 0] + (faces[:, 2] - w) / 2
    out[:, 1] = faces[:, 1] + (faces[:, 3] - h) / 2
    out[:, 2], out[:, 3] = w, h
    return out


def rects_of(faces: np.ndarray) -> np.ndarray:
    """(N, 4) x0, y0, x1, y1 of (x, y, w, h, ...) rows."""
    return np.stack([faces[:, 0], faces[:, 1], faces[:, 0] + faces[:, 2], faces[:, 1] + faces[:, 3]], axis=1)


def grown(faces: np.ndarray, top: float, bottom: float, side: float, width: int, height: int) -> np.ndarray:
    """(N, 4) x0, y0, x1, y1: each face box grown by margins (face heights above and below,
    face widths at each side), clipped to the photo."""
    fx0, fy0, fw, fh = faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 3]
    return np.stack(
        [
            np.maximum(fx0 - side * fw, 0),
            np.maximum(fy0 - top * fh, 0),
            np.minimum(fx0 + fw + side * fw, width),
            np.minimum(fy0 + fh + bottom * fh, height),
        ],
        axis=1,
    )


def head_boxes(faces: np.ndarray, width: int, height: int, options: CropOptions, relax: float = 1.0) -> np.ndarray:
    """(N, 4) x0, y0, x1, y1 of each face's head (face box plus `relax` x the margins), clipped."""
    top, bottom, side = (
        relax * m for m in (options.face_margin_top, options.face_margin_bottom, options.face_margin_side)
    )
    return grown(faces, top, bottom, side, width, height)


def guard_boxes(faces: np.ndarray, width: int, height: int, options: CropOptions) -> np.ndarray:
    """Face rows (x, y, w, h, score) whose boxes are the faces grown by the `face_guard_*`
    margins (clipped): what the hard rule keeps whole."""
    if len(faces) == 0:
        return faces.reshape(0, FACE_COLUMNS)
    r = grown(faces, options.face_guard_top, options.face_guard_bottom, options.face_guard_side, width, height)
    return np.concatenate([r[:, :2], r[:, 2:] - r[:, :2], faces[:, 4:5]], axis=1)


def even_face_saliency(
    saliency: np.ndarray, faces: np.ndarray, width: int, height: int, options: CropOptions
) -> np.ndarray:
    """The map with the saliency on the heads of equally important protected faces (near-ties,
    `face_importance` with `face_importance_tie`) pooled and shared out evenly among them
    (`face_saliency_even` of it; the rest stays as predicted), each head's share spread
    evenly over it. `faces` in full-resolution px, `saliency` at analysis size.

    Why: when not every face fits, the windows keeping one face or another differ mostly in
    the saliency the network puts on each face, and the score turns any difference, however
    small, into keeping one face and dropping the other every time (the "argmax bias" of
    Twitter's cropper; docs/fairness.md). Between faces the rule already holds equally
    important, the network's small preference must not decide: they get the same saliency
    and the rest of the photo (context, position) decides. Faces of different importance
    keep their predicted saliency, and the pooled total is unchanged, so the map still
    weighs faces against everything else as the network does.
    """
    share = options.face_saliency_even
    protected = protected_faces(faces.reshape(-1, FACE_COLUMNS).astype(np.float64), width, height, options)
    if share <= 0 or len(protected) < 2:
        return saliency
    tied = face_importance(protected, options.face_importance_tie)
    levels, group = np.unique(tied, return_inverse=True)
    if len(levels) == len(tied):  # no two faces equally important
        return saliency
    h, w = saliency.shape
    heads = head_boxes(common_size(protected, group), width, height, options)
    heads = heads * np.array([w / width, h / height, w / width, h / height])
    cells = np.stack([np.floor(heads[:, 0]), np.floor(heads[:, 1]), np.ceil(heads[:, 2]), np.ceil(heads[:, 3])], axis=1)
    cells = np.clip(cells, 0, [w, h, w, h]).astype(np.intp)
    out = saliency.astype(np.float64, copy=True)
    for g in range(len(levels)):
        members = cells[group == g]
        if len(members) < 2:
            continue
        # Worked inside the box around the group's heads only (a crowd has many groups).
        bx0, by0 = members[:, 0].min(), members[:, 1].min()
        bx1, by1 = members[:, 2].max(), members[:, 3].max()
        local = out[by0:by1, bx0:bx1]
        union = np.zeros(local.shape, bool)
        for x0, y0, x1, y1 in members:
            union[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] = True
        pooled = float(local[union].sum())
        even = np.zeros(local.shape, np.float64)
        for x0, y0, x1, y1 in members:
            even[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0] += pooled / len(members) / max((x1 - x0) * (y1 - y0), 1)
        local[union] = (1 - share) * local[union] + share * even[union]
    return out


def common_size(faces: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Face rows with each box resized, about its centre, to the mean width and height of the
    faces in its `group` (equally important faces share a group).

    Why: the evening pools the saliency inside each tied face's head and shares it out, but
    what the network puts on a face outside that region (hair, neck, the blend into the
    background) stays with the face. With each head sized from its own detector box, a face
    the detector boxes a little smaller leaves more of its own saliency outside the pool and
    is kept more often; the detector's box sizes differ slightly between groups of people
    (docs/fairness.md, "The residuals: why"). Equally important faces get equal regions.
    """
    out = faces.copy()
    for g in np.unique(group):
        members = group == g
        if members.sum() < 2:
            continue
        mw, mh = faces[members, 2].mean(), faces[members, 3].mean()
        out[members, 0] = faces[members, 0] + (faces[members, 2] - mw) / 2
        out[members, 1] = faces[members, 1] + (faces[members, 3] - mh) / 2
        out[members, 2], out[members, 3] = mw, mh
    return out


#: The middle tier guards the heads of faces at least this many times `face_min_size`.
LARGE_FACE = 2.0


def rule_boxes(
    faces: np.ndarray, width: int, height: int, options: CropOptions, max_w: float, max_h: float
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(faces, guards, tiers) the rule works with, for windows up to max_w x max_h: the
    protected faces and their guards (each too big for the largest window shrunk to its
    core), and the tiers of `measure_faces`, strictest first: every guard; the guards of the
    large faces (`LARGE_FACE`) with the small faces bare; every face bare."""
    protected = protected_faces(faces, width, height, options)
    bare = fit_faces(protected, max_w, max_h)
    guards = fit_faces(guard_boxes(protected, width, height, options), max_w, max_h)
    large = np.minimum(protected[:, 2], protected[:, 3]) >= LARGE_FACE * options.face_min_size * max(width, height)
    tiers = [guards]
    if large.any() and not large.all():
        tiers.append(np.concatenate([guards[large], bare[~large]]))
    tiers.append(bare)
    return bare, guards, tiers


def face_report(
    box: tuple[int, int, int, int],
    faces: np.ndarray,
    width: int,
    height: int,
    options: CropOptions,
    max_w: float,
    max_h: float,
) -> FaceReport:
    """The `FaceReport` of the (x, y, w, h) crop `box` chosen among windows up to max_w x max_h."""
    faces = faces.reshape(-1, FACE_COLUMNS).astype(np.float64)
    one = _Subset.of(*box)
    inside, outside = _inside_outside(one, rects_of(faces))
    protected, guards, _ = rule_boxes(faces, width, height, options, max_w, max_h)
    face_cut = sliced(one, rects_of(protected))[0]
    head_cut = sliced(one, rects_of(guards))[0] & ~face_cut
    kept, dropped = int(inside.sum()), int(outside.sum())
    return FaceReport(kept, dropped, len(faces) - kept - dropped, int(face_cut.sum()), int(head_cut.sum()))


# --- dense: any windows -----------------------------------------------------------------------


def _inside_outside(windows, rects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(windows x rects) masks: the (x0, y0, x1, y1) rect is wholly inside / wholly outside."""
    rx0, ry0, rx1, ry1 = (rects[None, :, i] for i in range(4))
    wx0, wy0, wx1, wy1 = windows.x[:, None], windows.y[:, None], windows.x1[:, None], windows.y1[:, None]
    inside = (wx0 <= rx0 + EPS) & (wy0 <= ry0 + EPS) & (wx1 >= rx1 - EPS) & (wy1 >= ry1 - EPS)
    outside = (wx1 <= rx0 + EPS) | (wx0 >= rx1 - EPS) | (wy1 <= ry0 + EPS) | (wy0 >= ry1 - EPS)
    return inside, outside


def contains(windows, boxes: np.ndarray) -> np.ndarray:
    """(windows x boxes) mask: the (x, y, w, h, ...) box lies wholly inside the window."""
    return _inside_outside(windows, rects_of(boxes))[0]


def sliced(windows, rects: np.ndarray) -> np.ndarray:
    """(windows x rects) mask: the (x0, y0, x1, y1) rect is neither wholly inside nor outside."""
    inside, outside = _inside_outside(windows, rects)
    return ~(inside | outside)


def _head_share(windows, heads: np.ndarray) -> np.ndarray:
    hx0, hy0, hx1, hy1 = (heads[None, :, i] for i in range(4))
    iw = np.clip(np.minimum(windows.x1[:, None], hx1) - np.maximum(windows.x[:, None], hx0), 0, None)
    ih = np.clip(np.minimum(windows.y1[:, None], hy1) - np.maximum(windows.y[:, None], hy0), 0, None)
    return iw * ih / np.maximum((hx1 - hx0) * (hy1 - hy0), 1e-9)


def _cut_of_share(share: np.ndarray, tol: float) -> np.ndarray:
    return np.clip((np.minimum(share, 1.0 - share) - tol) / (0.5 - tol), 0.0, 1.0)


def _head_weight(faces: np.ndarray, tie: float = 0.0) -> np.ndarray:
    importance = face_importance(faces, tie)
    return importance / max(float(importance.max()), 1e-12)


# --- on the window grid -----------------------------------------------------------------------


class _Lattice:
    """All grids of a window set, padded into one (G, Y + 1, X + 1) block, so that every
    face's rectangle on every grid goes into one difference array and one pair of
    cumulative sums (a handful of numpy calls whatever the number of faces or grids)."""

    def __init__(self, grids: tuple[Grid, ...]):
        self.nx = np.array([len(g.px) for g in grids])
        self.ny = np.array([len(g.py) for g in grids])
        big_x, big_y = int(self.nx.max()), int(self.ny.max())
        self.px = np.full((len(grids), big_x), np.inf)  # padding: never overlaps anything
        self.py = np.full((len(grids), big_y), np.inf)
        for k, g in enumerate(grids):
            self.px[k, : len(g.px)] = g.px
            self.py[k, : len(g.py)] = g.py
        self.w = np.array([g.w for g in grids], np.float64)[:, None, None]
        self.h = np.array([g.h for g in grids], np.float64)[:, None, None]
        self.stride = big_x + 1
        self.block = (big_y + 1) * self.stride
        self.shape = (len(grids), big_y + 1, self.stride)
        # Window i of the set is cell gather[i] of the flattened block.
        self.gather = np.concatenate(
            [
                k * self.block + (np.arange(len(g.py))[:, None] * self.stride + np.arange(len(g.px))[None, :]).ravel()
                for k, g in enumerate(grids)
            ]
        )
        # Per axis, the window starts and ends of every grid as rank tables (`_RankTable`):
        # one binary search per relation for all grids at once.
        self.tables = {
            axis: tuple(
                _RankTable([row[:n] + extra * size for row, n, size in zip(pos, counts, sizes)]) for extra in (0.0, 1.0)
            )
            for axis, pos, counts, sizes in (
                ("x", self.px, self.nx, self.w[:, 0, 0]),
                ("y", self.py, self.ny, self.h[:, 0, 0]),
            )
        }

    def corners(self, rects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(over, inside): each (4, G, F) flat cell indices of the rectangle corners (y0x0,
        y0x1, y1x0, y1x1) where face f overlaps / lies inside the windows of grid g."""
        runs = self.runs(rects)
        base = (np.arange(len(self.nx)) * self.block)[:, None]
        out = []
        for which in (0, 1):
            (xa, xb), (ya, yb) = runs["x"][which], runs["y"][which]
            ya, yb = base + ya * self.stride, base + yb * self.stride
            out.append(np.stack([ya + xa, ya + xb, yb + xa, yb + xb]))
        return out[0], out[1]

    def window_counts(self, rects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(overlapping, holding): per rect, how many windows overlap it / hold it whole."""
        runs = self.runs(rects)
        return tuple(
            ((runs["x"][k][1] - runs["x"][k][0]) * (runs["y"][k][1] - runs["y"][k][0])).sum(axis=0) for k in (0, 1)
        )

    def runs(self, rects: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per axis, (over, inside): each (2, G, F) [first, end) position indices of the
        windows of grid g that overlap / hold rect f along that axis.

        On a sorted axis each relation holds on one run of positions, found by binary search
        with the same comparisons as the dense `_inside_outside`: a window [p, p + s)
        overlaps [r0, r1) unless p + s <= r0 + EPS or p >= r1 - EPS, and holds it when also
        p <= r0 + EPS and p + s >= r1 - EPS.
        """
        runs = {}
        for axis, r0, r1 in (
            ("x", rects[:, 0] + EPS, rects[:, 2] - EPS),
            ("y", rects[:, 1] + EPS, rects[:, 3] - EPS),
        ):
            start, end = self.tables[axis]
            over = np.stack([end.count(r0, "right"), start.count(r1, "left")])  # ends <= r0 / starts < r1
            inside = np.stack(
                [np.maximum(over[0], end.count(r1, "left")), np.minimum(over[1], start.count(r0, "right"))]
            )
            for run in (over, inside):
                empty = run[1] <= run[0]
                run[:, empty] = 0
            runs[axis] = (over, inside)
        return runs

    def prepare(self, corners: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat corner cells, their signs and their faces for `stab`, from (corners, sign) pairs."""
        idx = np.concatenate([c.reshape(-1) for c, _ in corners])
        sign = np.concatenate([np.repeat([s, -s, -s, s], c[0].size) for c, s in corners])
        face = np.concatenate([np.tile(np.arange(c.shape[2]), 4 * c.shape[1]) for c, _ in corners])
        return idx, sign, face

    def stab(self, prepared: tuple[np.ndarray, np.ndarray, np.ndarray], weights: np.ndarray) -> np.ndarray:
        """(K, windows): for each row of (K, F) `weights`, per window the signed sum of the
        weights of the faces whose rectangles (the prepared corners) hold the window's indices."""
        idx, sign, face = prepared
        weights = np.atleast_2d(np.asarray(weights, np.float64))
        k = len(weights)
        cells = int(np.prod(self.shape))
        flat = (np.arange(k)[:, None] * cells + idx[None, :]).ravel()
        # Whole weights (counts, masks) sum exactly in integers, and integer prefix sums are
        # several times faster than floating-point ones; other weights stay in float64.
        signed = (weights[:, face] * sign[None, :]).ravel()
        if k == 1 and np.isin(weights, (0.0, 1.0)).all():
            diff = np.bincount(flat[signed > 0], minlength=cells) - np.bincount(flat[signed < 0], minlength=cells)
        else:
            diff = np.bincount(flat, signed, minlength=k * cells)
            if np.abs(weights).sum() < 2**31 and np.array_equal(weights, np.rint(weights)):
                diff = np.rint(diff).astype(np.int64)
        diff = diff.reshape(k, *self.shape).cumsum(axis=2).cumsum(axis=3)
        return diff.reshape(k, cells)[:, self.gather].astype(np.float64)


class _RankTable:
    """Sorted value rows (one per grid) searched all at once: `count(q, side)` is, per row
    and query, `np.searchsorted(row, q, side)`, exactly, from one search in the rows' union.

    Every row value is in the union, so the union's values below (or at most) q that belong
    to a row are that row's values below (at most) q; `counts[k, i]` holds how many of row
    k's values are at most the union's (i - 1)-th value."""

    def __init__(self, rows: list[np.ndarray]):
        values = np.concatenate(rows)
        self.union, where = np.unique(values, return_inverse=True)
        row = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
        width = len(self.union) + 1
        hits = np.bincount(row * width + where.ravel() + 1, minlength=len(rows) * width)
        self.counts = hits.reshape(len(rows), width).cumsum(axis=1)

    def count(self, queries: np.ndarray, side: str) -> np.ndarray:
        """(rows, queries) int64."""
        where = np.searchsorted(self.union, queries, side=side)  # type: ignore[call-overload]
        return np.asarray(self.counts[:, where])


def on_grid(windows, boxes: int) -> bool:
    """Whether to measure `boxes` boxes on the window grid: the windows carry a grid that
    covers them all and there are more window x box pairs than `DENSE_CELLS`."""
    grids = getattr(windows, "grids", ())
    return bool(grids) and sum(g.size for g in grids) == len(windows) and len(windows) * boxes > DENSE_CELLS


def _lattice(windows) -> _Lattice:
    """The window set's lattice, built once per set."""
    cached = windows.__dict__.get("_lattice")
    if cached is None:
        cached = _Lattice(windows.grids)
        windows.__dict__["_lattice"] = cached  # frozen dataclass: a cache, not state
    return cached


def count_inside(windows, boxes: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Per window: how many of the (x, y, w, h, ...) boxes lie wholly inside (or the sum of
    their `weights`)."""
    return measure_faces(windows, [(boxes, weights)], [])[1][0]


def face_feasible(windows, faces: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """Windows (among `allowed`) that slice no face: each face box wholly inside or outside.

    When every window slices some face, the windows whose most important sliced face is
    least important pass (then those slicing the least importance in total): the most
    important faces stay whole, the others are dropped whole where they can be.
    """
    return measure_faces(windows, [], [faces], allowed)[0]


def measure_faces(
    windows,
    counted: list[tuple[np.ndarray, np.ndarray | None]],
    tiers: list[np.ndarray],
    allowed: np.ndarray | None = None,
    importance_tie: float = 0.0,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(feasible, sums). `feasible`: the windows (among `allowed`) that slice no box of the
    first of `tiers` that some window can leave unsliced; when no tier can, `face_feasible`'s
    fallback on the last tier (all of `allowed` without tiers). `sums`: for each
    (boxes, weights) of `counted`, per window the number (or the sum of the weights) of the
    boxes wholly inside.

    The engine's tiers are the guards (faces with the usual head around them), then the bare
    faces: where a crowd leaves no gap for whole heads, faces are still never sliced.
    On the window grid every box set's ranges come from one search.
    """
    n = len(windows)
    allowed = np.ones(n, bool) if allowed is None else np.asarray(allowed, bool)
    tiers = [t.reshape(-1, FACE_COLUMNS) for t in tiers if len(t)]
    weighted = [(b, np.ones(len(b)) if w is None else np.asarray(w, np.float64)) for b, w in counted]
    boxes = sum(len(b) for b, _ in weighted) + sum(len(t) for t in tiers)
    if not on_grid(windows, boxes):
        memo: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

        def relations(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # (inside, outside), once per box set
            r = np.ascontiguousarray(rects_of(b), np.float64)
            key = r.tobytes()
            if key not in memo:
                memo[key] = _inside_outside(windows, r)
            return memo[key]

        sums = [(relations(b)[0] * w[None, :]).sum(axis=1) if len(b) else np.zeros(n) for b, w in weighted]
        if not tiers:
            return allowed.copy(), sums
        cuts = [(~(relations(t)[0] | relations(t)[1])).astype(np.float64) for t in tiers]
        slicers = [lambda weights, cut=cut: cut @ np.asarray(weights, np.float64) for cut in cuts]
        return _tiered(tiers, slicers, allowed, importance_tie), sums
    sets = [b for b, _ in weighted] + tiers
    bounds = np.cumsum([0] + [len(b) for b in sets])
    if bounds[-1] == 0:
        return allowed.copy(), [np.zeros(n) for _ in weighted]
    lattice = _lattice(windows)
    over, inside = lattice.corners(np.concatenate([rects_of(b.reshape(-1, FACE_COLUMNS)) for b in sets]))
    parts = [slice(bounds[k], bounds[k + 1]) for k in range(len(sets))]
    sums = [
        lattice.stab(lattice.prepare([(inside[..., part], 1.0)]), weights)[0] if len(boxes) else np.zeros(n)
        for part, (boxes, weights) in zip(parts, weighted)
    ]
    if not tiers:
        return allowed.copy(), sums
    slicers = []
    for _tier, part in zip(tiers, parts[len(weighted) :]):
        prepared = lattice.prepare([(over[..., part], 1.0), (inside[..., part], -1.0)])  # overlapping, not inside
        slicers.append(lambda weights, prepared=prepared: lattice.stab(prepared, weights)[0])
    return _tiered(tiers, slicers, allowed, importance_tie), sums


def _tiered(tiers: list[np.ndarray], slicers: list, allowed: np.ndarray, tie: float = 0.0) -> np.ndarray:
    """The tier rule of `measure_faces`, given per tier a function from face weights to the
    per-window sum of the weights of the faces each window slices."""
    for tier, slicing in zip(tiers, slicers):
        ok = allowed & (slicing(np.ones(len(tier))) < 0.5)
        if ok.any():
            return ok
    return _least_sliced(tiers[-1], slicers[-1], allowed, tie)


def _least_sliced(faces: np.ndarray, slicing, allowed: np.ndarray, tie: float = 0.0) -> np.ndarray:
    """Among `allowed`, the windows whose most important sliced face is least important, then
    those slicing the least importance in total.

    The least "most important face sliced" is the smallest importance level v such that some
    allowed window slices no face more important than v: a binary search over the sorted
    levels (the smaller v, the more faces to avoid, so existence only falls).
    """
    importance = face_importance(faces, tie)
    levels = np.unique(importance)  # ascending; avoiding faces above the top one always works
    lo, hi = 0, len(levels) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if (allowed & (slicing(importance > levels[mid]) < 0.5)).any():
            hi = mid
        else:
            lo = mid + 1
    # Worst-sliced importances within 1e-9 of the least count as tied (rounding, not faces).
    ok = allowed & (slicing(importance > levels[lo] * (1 + 1e-9)) < 0.5)
    summed = np.where(ok, slicing(importance), np.inf)
    return ok & (summed <= summed.min() * (1 + 1e-9))


def head_cuts(
    windows, faces: np.ndarray, width: int, height: int, options: CropOptions, among: np.ndarray | None = None
) -> np.ndarray:
    """How badly each window slices the heads around the faces, beyond what it must.

    A head is the face box with its margins (hair, chin, ears). Per head, the share on the
    window's wrong side, min(share inside, share outside), beyond `head_cut_tolerance` and
    rescaled so that 1 = sliced in half. Only the part no window could avoid once it keeps
    (or drops) that face is charged: a close-up too tall for 16:9 is not pushed out of the
    crop for a head cut every crop keeping it must make. Heads count by importance relative
    to the most important face, so slicing a face in a crowd costs what slicing it alone
    would; the sum over heads.

    Measured for the windows in `among` (the ones the hard rules allow; all by default), NaN
    for the others: only allowed windows are ever ranked, and in a crowd they are few, so the
    windows x faces work stays small however many faces there are. What every window must
    cut (the floors) is over all windows, from the grid's ranges (a head some window holds
    whole, or misses, costs such windows nothing; only the faces where none does are
    measured over all windows).
    """
    n = len(windows)
    if len(faces) == 0:
        return np.zeros(n)
    out = np.zeros(n) if among is None else np.full(n, np.nan)
    rows = np.arange(n) if among is None else np.flatnonzero(among)
    if len(rows) == 0:
        return out
    tol = options.head_cut_tolerance
    heads = head_boxes(faces, width, height, options)
    if not on_grid(windows, len(faces)):
        every_cut = _cut_of_share(_head_share(windows, heads), tol)
        every_kept = contains(windows, faces)
        floor_kept = np.where(every_kept, every_cut, np.inf).min(axis=0)
        floor_dropped = np.where(every_kept, np.inf, every_cut).min(axis=0)
        cut, kept = every_cut[rows], every_kept[rows]
    else:
        sub = _Subset(windows, rows)
        cut = _cut_of_share(_head_share(sub, heads), tol)
        kept = contains(sub, faces)
        overlapping, holding = _lattice(windows).window_counts(heads)
        floor_kept = np.where(holding > 0, 0.0, np.nan)  # a window holds the whole head: 0
        floor_dropped = np.where(overlapping < n, 0.0, np.nan)  # a window misses it: 0
        rest = np.flatnonzero(np.isnan(floor_kept) | np.isnan(floor_dropped))
        if len(rest):  # close-ups and heads no window misses: over every window
            every_cut = _cut_of_share(_head_share(windows, heads[rest]), tol)
            every_kept = contains(windows, faces[rest])
            least_kept = np.where(every_kept, every_cut, np.inf).min(axis=0)
            least_dropped = np.where(every_kept, np.inf, every_cut).min(axis=0)
            floor_kept[rest] = np.where(np.isnan(floor_kept[rest]), least_kept, floor_kept[rest])
            floor_dropped[rest] = np.where(np.isnan(floor_dropped[rest]), least_dropped, floor_dropped[rest])
    floor = np.where(kept, floor_kept[None, :], floor_dropped[None, :])
    excess = np.clip(cut - np.where(np.isfinite(floor), floor, 0.0), 0.0, None)
    out[rows] = (excess * _head_weight(faces, options.face_importance_tie)[None, :]).sum(axis=1)
    return out


class _Subset:
    """Some of a window set's windows (the x, y, x1, y1 the dense measures read)."""

    __slots__ = ("x", "y", "x1", "y1")

    def __init__(self, windows, rows: np.ndarray):
        for name in ("x", "y", "x1", "y1"):
            object.__setattr__(self, name, getattr(windows, name)[rows])

    @classmethod
    def of(cls, x: int, y: int, w: int, h: int) -> _Subset:
        """One window."""
        out = cls.__new__(cls)
        for name, v in (("x", x), ("y", y), ("x1", x + w), ("y1", y + h)):
            object.__setattr__(out, name, np.array([v]))
        return out


__all__ = [
    "CORE_SHARE",
    "EPS",
    "FACE_COLUMNS",
    "Grid",
    "contains",
    "count_inside",
    "face_feasible",
    "even_face_saliency",
    "face_importance",
    "face_report",
    "rule_boxes",
    "fit_faces",
    "guard_boxes",
    "head_boxes",
    "head_cuts",
    "measure_faces",
    "protected_faces",
    "sliced",
]
