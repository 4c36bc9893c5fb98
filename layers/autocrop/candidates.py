"""Candidate windows: every position and scale of a ratio, measured by integral images.

Windows live in upright full-resolution pixels (integers, exact ratio up to rounding); the
saliency map lives at analysis size. Sums over a window read the map's integral image at the
window's corners (rounded to analysis pixels), so any rectangle is measured in O(1).

The face rule: a protected face's box is never sliced, it is wholly inside the window or
wholly outside (a hard rule; when every window slices some face, the most important faces
stay whole). Its head (the box with room for hair above, chin below and ears at the sides)
should be whole too: how much of each head a window slices is a penalty of the score, so a
face is kept with room or dropped with room wherever the ratio allows.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from .face_rule import (
    EPS,
    FACE_COLUMNS,
    Grid,
    contains,
    face_feasible,
    face_importance,
    fit_faces,
    head_boxes,
    head_cuts,
    measure_faces,
    rule_boxes,
    sliced,
)
from .options import CropOptions

#: The edge term's thin bands are this many times thinner than its bands (`edge_cuts`).
THIN_BAND = 3
#: A person's body, for keeping crop edges off it (`body_boxes`): this many face widths wide...
BODY_WIDTH = 2.4
#: ...reaching this many face heights below the face.
BODY_DEPTH = 3.0
#: Showing this share of the width of a dropped person's body counts fully (`stray_bodies`).
#: Chosen on the validation photos: 1 (the share shown, as it is) kept their face cuts and
#: crop quality; 0.25 (a quarter counts fully) cut one more labelled face in 144 crops.
STRAY_FULL = 1.0
#: In a crowd only this many of the largest faces' bodies are kept off the edges (`stray_bodies`).
STRAY_MAX_FACES = 12
#: What each object cut by a crop edge costs, of the whole weight (`objects_cut`).
OBJECT_CUT = 1.0


@dataclass(frozen=True, eq=False)
class SaliencyIndex:
    """An integral image of a saliency map, measured in full-resolution coordinates."""

    integral: np.ndarray
    sx: float  # analysis px per full-resolution px, horizontally
    sy: float  # ... vertically
    total: float
    peak: float
    mean: float  # per analysis pixel

    @classmethod
    def build(cls, saliency: np.ndarray, width: int, height: int) -> SaliencyIndex:
        """Index a map (analysis size) of a `width` x `height` upright photo."""
        s = np.ascontiguousarray(saliency, dtype=np.float64)
        ah, aw = s.shape
        integral = cv2.integral(s)
        total = float(integral[-1, -1])
        return cls(integral, aw / width, ah / height, total, float(s.max(initial=0)), total / max(s.size, 1))

    def cells(self, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> tuple[np.ndarray, ...]:
        """Full-resolution rectangles -> integral-image indices (c0, r0, c1, r1), rounded to
        analysis pixels.

        Half an analysis pixel is under 0.1% of the photo: finer than any crop decision.
        """
        h, w = self.integral.shape[0] - 1, self.integral.shape[1] - 1

        def index(v: np.ndarray, k: float, limit: int) -> np.ndarray:
            return np.clip(np.rint(np.asarray(v, np.float64) * k), 0, limit).astype(np.intp)

        return index(x0, self.sx, w), index(y0, self.sy, h), index(x1, self.sx, w), index(y1, self.sy, h)

    def sums(self, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> np.ndarray:
        """Saliency inside full-resolution rectangles [x0, x1) x [y0, y1)."""
        ii = self.integral
        c0, r0, c1, r1 = self.cells(x0, y0, x1, y1)
        return ii[r1, c1] - ii[r1, c0] - ii[r0, c1] + ii[r0, c0]


@dataclass(frozen=True, eq=False)
class Windows:
    """Candidate windows of one ratio, as parallel arrays in upright full-resolution px."""

    x: np.ndarray
    y: np.ndarray
    w: np.ndarray
    h: np.ndarray
    scale: np.ndarray  # side length relative to the ratio's largest window
    #: How the windows tile as position grids of one size each (from `propose_windows`);
    #: empty for hand-made window sets. The face rule is measured per axis on grids.
    grids: tuple[Grid, ...] = ()

    def __len__(self) -> int:
        return int(self.x.size)

    @cached_property
    def x1(self) -> np.ndarray:
        return _read_only(self.x + self.w)

    @cached_property
    def y1(self) -> np.ndarray:
        return _read_only(self.y + self.h)

    def memo(self, key: object, make: Callable[[], np.ndarray]) -> np.ndarray:
        """`make()`, computed once per window set: for what depends on the windows alone
        (their centredness, their sizes), which a reused set (`propose_windows`) keeps."""
        cache = self.__dict__.setdefault("_memo", {})  # frozen dataclass: a cache, not state
        if key not in cache:
            cache[key] = _read_only(make())
        return cache[key]


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class WindowFeatures:
    """What the scorer needs to know about each window, all in 0..1 (and the faces the rule
    measured them against)."""

    saliency_kept: np.ndarray  # share of the photo's saliency inside
    saliency_of_best: np.ndarray  # saliency inside / the most any window of the same size holds
    faces_share: np.ndarray  # share of protected-face importance kept whole inside
    faces_kept: np.ndarray  # count of detected faces wholly inside
    head_cut: np.ndarray  # heads (faces with margins) sliced, by importance (see heads_of_allowed_only)
    edge_cut: np.ndarray  # mean over edges of salient content on both sides of the edge
    people_cut: np.ndarray  # bodies of people the window drops that it still shows a part of
    objects_cut: np.ndarray  # a plain background's objects the window's edges cut (see objects_cut)
    position: np.ndarray  # 1 at the photo's centre, 0 at the far corner of the free range
    area: np.ndarray  # area relative to the ratio's largest window
    focus: np.ndarray  # 1 with the centre on the focal point (zeros without one)
    feasible: np.ndarray  # the hard rules (keep regions, focal point, faces, saliency)
    #: (F, 5) the faces the rule protects, as it measured them (a face too big for the
    #: set's largest window shrunk to its core, `fit_faces`): the set's, not per window.
    protected: np.ndarray


def largest_window(width: int, height: int, ratio: float) -> tuple[int, int]:
    """The largest (w, h) of `ratio` that fits a `width` x `height` photo."""
    if width / height > ratio:
        return max(1, min(width, round(height * ratio))), height
    return width, max(1, min(height, round(width / ratio)))


def window_sizes(
    width: int, height: int, ratio: float, options: CropOptions | _ProposalSettings
) -> list[tuple[int, int, float]]:
    """(w, h, scale) from the largest window of `ratio` down to `min_scale`, distinct sizes only.

    The longer side is rounded first and the shorter derived from it, so every size keeps
    the ratio to within a pixel.
    """
    big_w, big_h = largest_window(width, height, ratio)
    steps = int(math.floor((1.0 - options.min_scale) / options.scale_step + 1e-9))
    sizes: list[tuple[int, int, float]] = []
    seen: set[tuple[int, int]] = set()
    for i in range(steps + 1):
        s = 1.0 - i * options.scale_step
        if ratio >= 1:
            w = max(1, round(big_w * s))
            h = max(1, min(height, round(w / ratio)))
        else:
            h = max(1, round(big_h * s))
            w = max(1, min(width, round(h * ratio)))
        if (w, h) not in seen:
            seen.add((w, h))
            sizes.append((w, h, s))
    return sizes


def _positions(free: int, step: float) -> np.ndarray:
    """Integer offsets 0..free, about `step` apart, both ends and the centre included."""
    if free <= 0:
        return np.zeros(1, np.int64)
    n = int(math.ceil(free / max(step, 1.0))) + 1
    # np.rint(np.linspace(0, free, n)) in plain Python (a process's first photo of a size
    # builds ~70 of these): linspace's i * (free / (n - 1)), its last value exactly `free`,
    # rounded half to even as rint is; tests/engine/test_candidates.py holds the equality.
    delta = free / (n - 1)
    offsets = {round(i * delta) for i in range(n - 1)} | {free, free // 2}
    return np.array(sorted(offsets), np.int64)


def _centred(point: float, side: int, full: int) -> np.ndarray:
    """The one offset of a `side`-long window centred on `point`, kept within 0..full - side."""
    return np.array([min(max(round(point - side / 2), 0), full - side)], np.int64)


#: Window sets kept for reuse (`propose_windows`): a job's photos mostly share a few sizes
#: (one camera, one phone), so the same four ratios' windows, and the face rule's lattice
#: and the window-only features cached on them, are built once. A set costs about 1-1.5 MB
#: at the default settings (12 MP or 100 MP alike: the windows follow `position_step`, not
#: the pixels); the cache keeps at most `PROPOSALS_KEPT` sets and `PROPOSALS_BYTES` of their
#: arrays, and a set over a quarter of that (a fine `position_step`) is never kept.
PROPOSALS_KEPT = 12
PROPOSALS_BYTES = 24 * 2**20
#: Bytes a kept set holds per window (five 8-byte arrays, the ends, the lattice's gather
#: index, the memoised features), measured: 0.86-1.47 MB for 12-16k windows.
_BYTES_PER_WINDOW = 96
_kept: OrderedDict[tuple[object, ...], Windows] = OrderedDict()
_kept_lock = threading.Lock()


def propose_windows(width: int, height: int, ratio: float, options: CropOptions) -> Windows:
    """Windows of `ratio` over positions (every `position_step`) and scales (down to `min_scale`);
    with a focal point, each scale's one window centred on it as far as the bounds allow.

    The same size, ratio and settings give the same (read-only) set, kept for reuse."""
    key = (int(width), int(height), float(ratio), float(options.position_step), float(options.scale_step),
           float(options.min_scale), None if options.focal_point is None else tuple(map(float, options.focal_point)))  # fmt: skip
    with _kept_lock:
        if key in _kept:
            _kept.move_to_end(key)
            return _kept[key]
    windows = _proposed(*key)  # type: ignore[arg-type]
    size = len(windows) * _BYTES_PER_WINDOW
    if size <= PROPOSALS_BYTES // 4:
        with _kept_lock:
            _kept[key] = windows
            while (
                len(_kept) > PROPOSALS_KEPT or sum(len(w) for w in _kept.values()) * _BYTES_PER_WINDOW > PROPOSALS_BYTES
            ):
                _kept.popitem(last=False)
    return windows


def _proposed(width: int, height: int, ratio: float, position_step: float, scale_step: float, min_scale: float,
              focal_point: tuple[float, float] | None) -> Windows:  # fmt: skip
    options = _ProposalSettings(position_step, scale_step, min_scale, focal_point)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    ws: list[int] = []
    hs: list[int] = []
    ss: list[float] = []
    grids: list[Grid] = []
    start = 0
    for w, h, s in window_sizes(width, height, ratio, options):
        if options.focal_point is not None:  # each size centred on it, as far as the photo's bounds allow
            px = _centred(options.focal_point[0] * width, w, width)
            py = _centred(options.focal_point[1] * height, h, height)
        else:
            px = _positions(width - w, options.position_step * width)
            py = _positions(height - h, options.position_step * height)
        n = len(px) * len(py)  # row-major in y: window start + iy * len(px) + ix
        grids.append(Grid(start, px, py, w, h))
        start += n
        xs.append(np.tile(px, len(py)))
        ys.append(np.repeat(py, len(px)))
        ws.append(w)
        hs.append(h)
        ss.append(s)
    counts = [g.size for g in grids]
    arrays = [np.concatenate(xs), np.concatenate(ys), np.repeat(np.array(ws, np.int64), counts),
              np.repeat(np.array(hs, np.int64), counts), np.repeat(np.array(ss, np.float64), counts)]  # fmt: skip
    arrays += [a for g in grids for a in (g.px, g.py)]
    for a in arrays:
        a.setflags(write=False)  # shared between calls: nobody may change them
    x, y, w, h, scale = arrays[:5]
    return Windows(x, y, w, h, scale, grids=tuple(grids))


@dataclass(frozen=True)
class _ProposalSettings:
    """The options `propose_windows` reads (what its cache is keyed on)."""

    position_step: float
    scale_step: float
    min_scale: float
    focal_point: tuple[float, float] | None


def region_coverage(windows: Windows, regions: np.ndarray) -> np.ndarray:
    """Mean share of each (x0, y0, x1, y1) region inside each window."""
    if len(regions) == 0:
        return np.ones(len(windows))
    rx0, ry0, rx1, ry1 = (regions[None, :, i] for i in range(4))
    iw = np.clip(np.minimum(windows.x1[:, None], rx1) - np.maximum(windows.x[:, None], rx0), 0, None)
    ih = np.clip(np.minimum(windows.y1[:, None], ry1) - np.maximum(windows.y[:, None], ry0), 0, None)
    area = np.maximum((rx1 - rx0) * (ry1 - ry0), 1e-9)
    return (iw * ih / area).mean(axis=1)


def edge_cuts(windows: Windows, index: SaliencyIndex, options: CropOptions, width: int, height: int,
              among: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """How much each window's edges cut through salient content, 0..1.

    For each edge, the mean saliency above the map's mean in a band just inside and in a
    band just outside; the smaller of the two (salient on both sides = a subject sliced).
    Edges on the photo's border cut nothing, and a flat map has nothing to cut. Mean over
    the four edges, relative to the map's peak above its mean. Worked out on the analysis
    grid, where the bands are whole cells. With `among` (a mask), only those windows are
    measured and the rest are NaN (the engine ranks the feasible windows only).
    """
    if among is not None:
        rows_of = np.flatnonzero(among)
        out = np.full(len(windows), np.nan)
        if len(rows_of):
            subset = Windows(windows.x[rows_of], windows.y[rows_of], windows.w[rows_of], windows.h[rows_of],
                             windows.scale[rows_of])  # fmt: skip
            out[rows_of] = edge_cuts(subset, index, options, width, height)
        return out
    ii = index.integral
    rows, cols = ii.shape[0] - 1, ii.shape[1] - 1
    c0, r0, c1, r1 = index.cells(windows.x, windows.y, windows.x1, windows.y1)
    d = options.edge_band * np.minimum(windows.w * index.sx, windows.h * index.sy)
    d = np.maximum(np.rint(d), 1).astype(np.intp)
    flat, stride = ii.ravel(), ii.shape[1]
    # Band limits, clipped to the grid once: inner and outer edges of each band.
    left_in, left_out = np.minimum(c0 + d, cols), np.maximum(c0 - d, 0)
    right_in, right_out = np.maximum(c1 - d, 0), np.minimum(c1 + d, cols)
    top_in, top_out = np.minimum(r0 + d, rows), np.maximum(r0 - d, 0)
    bottom_in, bottom_out = np.maximum(r1 - d, 0), np.minimum(r1 + d, rows)

    def mean(a0: np.ndarray, b0: np.ndarray, a1: np.ndarray, b1: np.ndarray) -> np.ndarray:
        """Mean over grid cells [a0, a1) x [b0, b1) (columns a, rows b; already clipped)."""
        area = (a1 - a0) * (b1 - b0)
        s0, s1 = b0 * stride, b1 * stride
        total = flat.take(s1 + a1) - flat.take(s1 + a0) - flat.take(s0 + a1) + flat.take(s0 + a0)
        return np.where(area > 0, total / np.maximum(area, 1), 0.0)

    baseline = index.mean
    # Thin bands (a third of the depth, at least a cell): a sliver thinner than the band
    # would only dilute the band's mean, so a thin part of a subject left on one side of the
    # edge would cost less than a clean cut through its middle. Each edge reads both depths
    # and counts the worse.
    t = np.maximum(d // THIN_BAND, 1)
    left_thin_in, left_thin_out = np.minimum(c0 + t, cols), np.maximum(c0 - t, 0)
    right_thin_in, right_thin_out = np.maximum(c1 - t, 0), np.minimum(c1 + t, cols)
    top_thin_in, top_thin_out = np.minimum(r0 + t, rows), np.maximum(r0 - t, 0)
    bottom_thin_in, bottom_thin_out = np.maximum(r1 - t, 0), np.minimum(r1 + t, rows)
    bands = (
        (mean(c0, r0, left_in, r1), mean(left_out, r0, c0, r1),
         mean(c0, r0, left_thin_in, r1), mean(left_thin_out, r0, c0, r1), windows.x > 0),
        (mean(right_in, r0, c1, r1), mean(c1, r0, right_out, r1),
         mean(right_thin_in, r0, c1, r1), mean(c1, r0, right_thin_out, r1), windows.x1 < width),
        (mean(c0, r0, c1, top_in), mean(c0, top_out, c1, r0),
         mean(c0, r0, c1, top_thin_in), mean(c0, top_thin_out, c1, r0), windows.y > 0),
        (mean(c0, bottom_in, c1, r1), mean(c0, r1, c1, bottom_out),
         mean(c0, bottom_thin_in, c1, r1), mean(c0, r1, c1, bottom_thin_out), windows.y1 < height),
    )  # fmt: skip
    total = np.zeros(len(windows))
    for inner, outer, thin_inner, thin_outer, open_edge in bands:
        # A clean cut (both deep bands salient), a sliver left inside (the thin inner band
        # and the deep outer one) or just outside (the deep inner band and the thin outer one).
        cut = np.maximum.reduce(
            [np.minimum(inner, outer), np.minimum(thin_inner, outer), np.minimum(inner, thin_outer)]
        )
        total += np.where(open_edge, np.clip(cut - baseline, 0.0, None), 0.0)
    return total / 4 / max(index.peak - baseline, 1e-9)


def objects_cut(windows: Windows, objects: np.ndarray | None, width: int, height: int) -> np.ndarray:
    """0..1 per window: how many of the objects (x0, y0, x1, y1 rows) its edges cut, each
    costing `OBJECT_CUT` (two or more: 1). An object partly inside, by more than a pixel on
    either side, is cut, whether the part left is a sliver or half.

    Why: on a plain background the saliency network sees the objects of a graphic or a
    product shot as one blob, and the saliency edge term cannot tell a crop edge in the gap
    between two squares from one through a square; the objects are known exactly there."""
    n = len(windows)
    if objects is None or len(objects) == 0 or n == 0:
        return np.zeros(n)
    ox0, oy0, ox1, oy1 = (objects[None, :, i] for i in range(4))
    wx0, wy0, wx1, wy1 = windows.x[:, None], windows.y[:, None], windows.x1[:, None], windows.y1[:, None]
    tol = max(width, height) / 500  # about an analysis pixel
    overlaps = (np.minimum(wx1, ox1) - np.maximum(wx0, ox0) > tol) & (np.minimum(wy1, oy1) - np.maximum(wy0, oy0) > tol)
    whole = (wx0 <= ox0 + tol) & (wy0 <= oy0 + tol) & (wx1 >= ox1 - tol) & (wy1 >= oy1 - tol)
    return np.minimum((overlaps & ~whole).sum(axis=1) * OBJECT_CUT, 1.0)


def body_boxes(faces: np.ndarray, width: int, height: int) -> np.ndarray:
    """(F, 4) x0, y0, x1, y1: where the body of each face's person probably is: `BODY_WIDTH`
    face widths wide under the face, from the face's top down `BODY_DEPTH` face heights,
    clipped to the photo. An estimate: it is only used to keep crop edges off people."""
    cx = faces[:, 0] + faces[:, 2] / 2
    half = BODY_WIDTH * faces[:, 2] / 2
    return np.stack([
        np.maximum(cx - half, 0), faces[:, 1],
        np.minimum(cx + half, width), np.minimum(faces[:, 1] + (1 + BODY_DEPTH) * faces[:, 3], height),
    ], axis=1)  # fmt: skip


def stray_bodies(windows: Windows, faces: np.ndarray, width: int, height: int,
                 among: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """0..1 per window: the most of any person's body it shows whose face it drops, as a
    share of that body's width (over `STRAY_FULL`, capped at 1). With `among` (a mask), only
    those windows are measured and the rest are NaN, as `face_rule.head_cuts` does.

    Why: the face rule drops a face cleanly, but the body under it is not salient to the
    network and nothing kept the crop's edge off it: a group photo cropped to 9:16 came out
    with a sliver of a dropped person's arm at its edge. `faces`: the protected faces (the
    rule's, full-resolution px); in a crowd only the `STRAY_MAX_FACES` largest count (a
    foreground person's arm at the edge shows; so does the cost of measuring hundreds of
    faces against every window).
    """
    n = len(windows)
    if len(faces) == 0 or n == 0:
        return np.zeros(n)
    if len(faces) > STRAY_MAX_FACES:
        faces = faces[np.argsort(-(faces[:, 2] * faces[:, 3]), kind="stable")[:STRAY_MAX_FACES]]
    rows = np.arange(n) if among is None else np.flatnonzero(among)
    out = np.zeros(n) if among is None else np.full(n, np.nan)
    if len(rows) == 0:
        return out
    bodies = body_boxes(faces, width, height).astype(np.float32)
    bx0, by0, bx1, by1 = (bodies[None, :, i] for i in range(4))
    wx0, wy0 = windows.x[rows, None].astype(np.float32), windows.y[rows, None].astype(np.float32)
    wx1, wy1 = windows.x1[rows, None].astype(np.float32), windows.y1[rows, None].astype(np.float32)
    f = faces.astype(np.float32)
    fx0, fy0 = f[None, :, 0], f[None, :, 1]
    fx1, fy1 = fx0 + f[None, :, 2], fy0 + f[None, :, 3]
    # A face the window keeps whole shows its own body, which is no sliver.
    shown = ~((wx0 <= fx0 + EPS) & (wy0 <= fy0 + EPS) & (wx1 >= fx1 - EPS) & (wy1 >= fy1 - EPS))
    shown &= np.minimum(wy1, by1) > np.maximum(wy0, by0)
    inside_w = np.minimum(wx1, bx1) - np.maximum(wx0, bx0)
    share = np.where(shown, inside_w, 0.0) / np.maximum(bx1 - bx0, 1e-6)
    out[rows] = np.clip(share.max(axis=1) / STRAY_FULL, 0.0, 1.0)
    return out


def centredness(windows: Windows, width: int, height: int) -> np.ndarray:
    """1 for a window centred in the photo, falling to 0 at the far end of where it can move."""
    return windows.memo(("centredness", width, height), lambda: _centredness(windows, width, height))


def _centredness(windows: Windows, width: int, height: int) -> np.ndarray:
    fx = np.maximum(width - windows.w, 1) / 2
    fy = np.maximum(height - windows.h, 1) / 2
    dx = np.where(windows.w < width, (windows.x - (width - windows.w) / 2) / fx, 0.0)
    dy = np.where(windows.h < height, (windows.y - (height - windows.h) / 2) / fy, 0.0)
    return 1.0 - np.sqrt((dx * dx + dy * dy) / 2)


def share_of_best_same_size(windows: Windows, values: np.ndarray) -> np.ndarray:
    """Each window's value over the best value of any window of the same size (1 = the best).

    Windows of one scale share one size (`window_sizes` keeps distinct sizes only).
    """
    size = windows.memo("size_index", lambda: np.unique(windows.scale, return_inverse=True)[1].ravel())
    best = np.full(int(size.max()) + 1, -np.inf)
    np.maximum.at(best, size, values)
    top = best[size]
    return np.where(top > 0, values / np.where(top > 0, top, 1.0), 1.0)


def measure_windows(
    windows: Windows,
    index: SaliencyIndex,
    faces: np.ndarray,
    width: int,
    height: int,
    options: CropOptions,
    heads_of_allowed_only: bool = False,
    objects: np.ndarray | None = None,
) -> WindowFeatures:
    """Features and hard-rule feasibility of every window.

    With `heads_of_allowed_only` (the engine, which ranks only feasible windows), the head
    cut is measured on the feasible windows only and is NaN elsewhere: in a crowd that is
    most of the face work saved. Anything that reads infeasible windows (the ranker's
    training tables) leaves it off.

    `faces`: (N, 5) x, y, w, h, score in full-resolution px (all detections; the rule
    protects those of at least `face_min_size`). `objects`: (K, 4) x0, y0, x1, y1 of the
    separate objects of a plain background's subject (`rules.Subject.parts`), if any.
    """
    n = len(windows)
    kept_saliency = index.sums(windows.x, windows.y, windows.x1, windows.y1) / max(index.total, 1e-12)
    feasible = np.ones(n, bool)

    def restrict(mask: np.ndarray) -> None:
        nonlocal feasible
        narrowed = feasible & mask
        if narrowed.any():
            feasible = narrowed

    # 1. keep regions: contained if possible, else as much of them as can be.
    if options.keep:
        regions = np.array([r.to_pixels(width, height) for r in options.keep], np.float64)
        coverage = region_coverage(windows, regions)
        restrict(coverage >= coverage.max() - 1e-6)
    # 2. the focal point lies in the window.
    focus: np.ndarray = np.zeros(n)
    if options.focal_point is not None:
        fx, fy = options.focal_point[0] * width, options.focal_point[1] * height
        restrict((windows.x <= fx) & (fx <= windows.x1) & (windows.y <= fy) & (fy <= windows.y1))
        dist = np.hypot(windows.x + windows.w / 2 - fx, windows.y + windows.h / 2 - fy)
        focus = 1.0 - dist / (0.5 * math.hypot(width, height))
    # 3. the face rule: guards (faces with the usual head) whole where some window can keep
    #    them all whole or out, else the bare faces; the rest of the heads is scored.
    all_faces = faces.reshape(-1, FACE_COLUMNS).astype(np.float64)
    protected, _, tiers = rule_boxes(all_faces, width, height, options, windows.w.max(), windows.h.max())
    importance = face_importance(protected, options.face_importance_tie)
    feasible, (kept_importance, kept_count) = measure_faces(
        windows,
        [(protected, importance), (all_faces, None)],
        tiers,
        allowed=feasible,
        importance_tie=options.face_importance_tie,
    )
    faces_share = kept_importance / importance.sum() if importance.sum() > 0 else np.ones(n)
    faces_kept = np.rint(kept_count).astype(np.int64)
    # 4. enough saliency stays in the window.
    restrict(kept_saliency >= options.min_saliency_ratio * kept_saliency.max(initial=0))
    return WindowFeatures(
        saliency_kept=kept_saliency,
        saliency_of_best=share_of_best_same_size(windows, kept_saliency),
        faces_share=faces_share,
        faces_kept=faces_kept,
        head_cut=head_cuts(
            windows, protected, width, height, options, among=feasible if heads_of_allowed_only else None
        ),
        edge_cut=edge_cuts(windows, index, options, width, height, among=feasible if heads_of_allowed_only else None),
        people_cut=stray_bodies(windows, protected, width, height, among=feasible if heads_of_allowed_only else None),
        objects_cut=objects_cut(windows, objects, width, height),
        position=centredness(windows, width, height),
        area=(windows.w * windows.h) / float(windows.w.max() * windows.h.max()),
        focus=focus,
        feasible=feasible,
        protected=protected,
    )


__all__ = [
    "SaliencyIndex",
    "WindowFeatures",
    "Windows",
    "contains",
    "head_boxes",
    "head_cuts",
    "sliced",
    "edge_cuts",
    "face_feasible",
    "fit_faces",
    "largest_window",
    "measure_windows",
    "propose_windows",
    "window_sizes",
]
