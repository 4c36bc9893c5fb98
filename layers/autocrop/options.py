"""One options object with every tunable of the engine, each with a named, commented default.

Units: fractions are of the upright photo unless a comment says otherwise; "analysis px" are
pixels of the reduced analysis image (long side `analysis_long_side`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import InvalidOptionsError
from .memory import BASELINE_BYTES, DEFAULT_MEMORY_BUDGET
from .types import Region

#: Default pixel guard: 100 MP covers 48-108 MP phone sensors; a 200 MP upload is refused.
DEFAULT_MAX_PIXELS = 100_000_000
#: The ratios a request gets when it names none.
DEFAULT_RATIOS = ("1:1", "16:9", "4:5", "9:16")
#: Ratios further than this from 1 (either way) are refused: a 1:20 banner crop is a mistake.
MAX_RATIO = 20.0
#: How the upscaled second face pass is run: only when the first pass saw small faces, always, never.
SMALL_FACE_PASS_MODES = ("auto", "always", "never")
#: Who ranks the candidate windows (see `CropOptions.ranker`).
RANKERS = ("auto", "learned", "composition")


def parse_ratio(text: str) -> float:
    """'W:H' -> W / H for any positive W and H ('16:9', '1.91:1', '3:2')."""
    if not isinstance(text, str):
        raise InvalidOptionsError(f"a ratio is a 'W:H' string, got {text!r}")
    parts = text.strip().split(":")
    if len(parts) != 2:
        raise InvalidOptionsError(f"a ratio is 'W:H' (e.g. '16:9'), got {text!r}")
    try:
        w, h = float(parts[0]), float(parts[1])
    except ValueError as e:
        raise InvalidOptionsError(f"a ratio is 'W:H' with numbers, got {text!r}") from e
    if not (math.isfinite(w) and math.isfinite(h)) or w <= 0 or h <= 0:
        raise InvalidOptionsError(f"a ratio needs positive W and H, got {text!r}")
    value = w / h
    if not 1 / MAX_RATIO <= value <= MAX_RATIO:
        raise InvalidOptionsError(f"ratio {text!r} is more extreme than 1:{MAX_RATIO:g}")
    return value


#: A size whose W / H is this close (relatively) to a ratio is of that ratio.
RATIO_TOLERANCE = 0.01


def size_is_of_ratio(size: tuple[int, int], ratio: str) -> bool:
    """Whether a 'WxH' size has the shape of the 'W:H' ratio (within RATIO_TOLERANCE)."""
    return abs((size[0] / size[1]) / parse_ratio(ratio) - 1) <= RATIO_TOLERANCE


def ratio_of_size(size: tuple[int, int]) -> str:
    """The 'W:H' ratio of a 'WxH' size in lowest terms: (1080, 1350) -> '4:5'."""
    divisor = math.gcd(*size)
    return f"{size[0] // divisor}:{size[1] // divisor}"


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H) positive integers ('1080x1350')."""
    parts = text.strip().lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise InvalidOptionsError(f"a size is 'WxH' in pixels (e.g. '1080x1350'), got {text!r}")
    w, h = int(parts[0]), int(parts[1])
    if w <= 0 or h <= 0:
        raise InvalidOptionsError(f"a size needs positive width and height, got {text!r}")
    return w, h


@dataclass(frozen=True)
class CropOptions:
    """Everything a request can tune. Construct with keywords, or `CropOptions.from_ratios`."""

    # --- what to produce ------------------------------------------------------------------
    #: Aspect ratios, each 'W:H'; results come back in this order, labelled as given.
    ratios: tuple[str, ...] = DEFAULT_RATIOS

    # --- caller hints ---------------------------------------------------------------------
    #: (x, y) in 0..1 of the upright photo: the crop contains it and centres on it where it
    #: can, as imgix's focal point does.
    focal_point: tuple[float, float] | None = None
    #: Regions whose saliency is raised by their weight (smartcrop.js's boost).
    boost: tuple[Region, ...] = ()
    #: Regions the crop must contain (ranked above faces); when impossible, as much as can fit.
    keep: tuple[Region, ...] = ()
    #: (ratio, region) pairs: the crop of that ratio is exactly the region (fractions of the
    #: upright photo), where the region has the ratio's shape on the photo; the engine still
    #: measures it against the face rule and warns when it slices a face (`autocrop.overrides`).
    boxes: tuple[tuple[str, Region], ...] = ()

    # --- input guard and analysis size ----------------------------------------------------
    #: Refuse images with more pixels than this before decoding them.
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: Peak RSS (bytes, the process's baseline included) a job may reach: each stage counts
    #: what it will hold from the header, before decoding, and refuses a photo that would
    #: go over it (`autocrop.memory`; measured per mode in docs/memory.md).
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    #: Long side of the analysis image (analysis px); models never see more than this.
    analysis_long_side: int = 640
    #: ...nor, for JPEGs, less than this: they decode at the smallest DCT scale that keeps
    #: this many pixels (a 12 MP photo at 1/8: 504 px), which is the fastest decode.
    analysis_min_long_side: int = 480

    # --- candidate windows ----------------------------------------------------------------
    #: Smallest window, as a fraction of the largest window of the ratio (side length).
    #: Smaller windows win only when they pay: the saliency term compares windows of one
    #: size, so a smaller one can beat larger ones that the face rule pushes off the subject.
    min_scale: float = 0.6
    #: Step between window scales (fraction of the largest window's side).
    scale_step: float = 0.05
    #: Step between window positions, as a fraction of the photo's width/height.
    position_step: float = 0.01
    #: A window must keep at least this share of the saliency the best window keeps.
    min_saliency_ratio: float = 0.5

    # --- crop rules (`autocrop.rules`) ----------------------------------------------------
    #: A photo whose shape is within this share of a ratio (|photo W/H / ratio - 1|) is kept
    #: whole for that ratio (`chosen_by` "whole photo"): a 680x383 graphic asked for 16:9 is
    #: not trimmed by 5% to be exact. An exact output size is then reached by a resize that
    #: stretches the photo by at most this share (0.02: a circle becomes an ellipse 2% wider
    #: than tall, which people do not notice at a glance). 0: only exact shapes.
    whole_photo_tolerance: float = 0.02
    #: Plain background: when at least this share of the photo's border is one colour
    #: (`plain_colour_distance`), the subject (whatever differs from it) is found and kept
    #: whole with `plain_margin` around it, where the ratio allows (`chosen_by`
    #: "plain background"). 0 turns the rule off.
    plain_border_share: float = 0.97
    #: Largest colour distance (Euclidean, 0..255 RGB) from the border's colour that still
    #: counts as background.
    plain_colour_distance: float = 24.0
    #: Margin kept around the subject on a plain background, as a share of the photo's
    #: longer side (a background-removal mask with a 3% margin matched hand-made crops).
    plain_margin: float = 0.03

    # --- faces ----------------------------------------------------------------------------
    #: YuNet score threshold (its own demos use 0.6-0.9; lower finds more, risks false faces).
    face_score_threshold: float = 0.6
    #: IoU above which two detections (from different passes) are one face.
    face_nms_iou: float = 0.3
    #: The second, upscaled pass for small faces: "auto" (only when the first pass found a
    #: small face: small faces come in groups), "always" or "never".
    face_small_pass: str = "auto"
    #: Upscale factor of that second pass.
    face_upscale: float = 2.0
    #: A face narrower than this (analysis px) counts as small. YuNet finds faces from ~10 px.
    face_small_px: float = 40.0
    #: Faces narrower than this fraction of the photo's long side are reported but not
    #: protected: too small for a cut through them to matter. Measured on EyeCrowd's
    #: training photos (never validation): YuNet's box is about half a labelled face's width,
    #: so at 0.015 it left 22 of 1,813 detected countable faces (1.2%) unprotected (a 26 px
    #: labelled face came out as a 10 px box); at 0.013 every detection of a countable face
    #: there is kept (none is under 0.013 of the long side; the 1st percentile is 0.0149).
    face_min_size: float = 0.013
    #: The head around a YuNet face box (brow to chin), in face heights above (hair) and
    #: below (chin), and face widths at each side (ears, hair). A face is kept with all of
    #: its head inside the window or dropped with all of it outside (`head_margins_sliced`), its
    #: bare box always is (a hard rule). Defaults: about the 95th
    #: percentile of how far EyeCrowd's labelled head boxes reach beyond YuNet's boxes
    #: (medians: 0.42 above, 0.12 below, 0.3 at the sides).
    face_margin_top: float = 0.7
    face_margin_bottom: float = 0.35
    face_margin_side: float = 0.6
    #: The guard: what the hard rule keeps wholly inside or wholly outside a crop where some
    #: window can (`autocrop.face_rule`: else the guards of large faces only, else the bare
    #: faces), the face box grown by these margins (same units). A bare YuNet box (brow to
    #: chin) kept whole still let crops slice the hair and ears of the heads EVALUATION.md
    #: counts: every face cut on the validation photos was of a detected face. Defaults: the
    #: 25th percentiles of how far EyeCrowd's labelled heads reach beyond YuNet's boxes on the
    #: training photos (2,308 faces; medians 0.43, 0.12, 0.29). Measured (docs/crop_quality.md): validation
    #: face cuts 0.021 -> 0.014 and of_oracle 0.952 -> 0.949; cross-fitted training photos
    #: 0.055 -> 0.043 and 0.924 -> 0.923. The medians cut more (0.039) and cost more (0.921,
    #: OSIE's 9:16 portraits most); 0 for all three is the bare-face rule of before.
    face_guard_top: float = 0.33
    face_guard_bottom: float = 0.06
    face_guard_side: float = 0.19

    #: Faces whose importance (area x confidence) is within this share of a more important
    #: face's count as that important (`face_rule.face_importance`): the detector's box size
    #: and confidence differ a little between groups of people, and a near-tie between two
    #: faces must not decide which one a crop drops (docs/fairness.md). 0: raw importance.
    face_importance_tie: float = 0.25
    #: Share (0..1) of the saliency on the protected faces' heads that is pooled and shared
    #: out again by importance (`face_rule.even_face_saliency`) when a photo has two or more:
    #: which face stays when not all fit is then the face rule's choice, not a small difference
    #: in the saliency the network gives each face (docs/fairness.md). 0: the map as predicted.
    face_saliency_even: float = 1.0
    #: Windows scoring within this of the best that keep other, equally important faces are
    #: its equals: of those faces the ones nearer the photo's centre stay (`ranking.
    #: break_face_ties`), not whichever a sliver of saliency favours. 0: the best score wins.
    face_score_tie: float = 0.01

    # --- composition score (weights of the terms; see scoring.py) ---------------------------
    #: Saliency inside the window, as a share of the photo's (`saliency_relative` 0) or of
    #: the most any window of the same size could hold (1: "as good as this size allows",
    #: which lets a smaller window win when the face rule pushes larger ones off the subject).
    weight_saliency: float = 1.0
    saliency_relative: float = 1.0
    #: Share of face importance (area x confidence) kept whole inside the window (the
    #: breakdown's `faces_kept_whole`; `no_protected_face` where there is none to keep).
    weight_faces: float = 0.1
    #: Heads sliced by the window (see face_margin_*), each weighted by its importance
    #: relative to the most important face; 1 = that face's head cut in half.
    weight_heads: float = 1.0
    #: A head this little on the wrong side of an edge (share of its box) is not cut.
    head_cut_tolerance: float = 0.0
    #: Salient content on both sides of a window edge (an edge cutting through a subject).
    weight_edges: float = 0.2
    #: Closeness of the window to the photo's centre (breaks ties, steadies results).
    weight_position: float = 0.02
    #: Window area relative to the largest window of the ratio.
    weight_area: float = 0.1
    #: Closeness of the window's centre to the focal point (only with `focal_point`).
    weight_focus: float = 2.0
    #: Depth of the bands either side of an edge that the edge term compares, as a fraction
    #: of the window's shorter side.
    edge_band: float = 0.04

    # --- ranking ----------------------------------------------------------------------------
    #: "learned": the trained ranker (models/ranker.tflite) re-ranks the composition score's
    #: shortlist; it falls back to the composition score, and says so in `chosen_by`, when its
    #: model or the saliency model's features are missing. "composition": the score alone.
    #: "auto": the learned ranker when its model card records that it beat the composition
    #: score on the validation photos (higher of_oracle, no more face cuts), else the score.
    ranker: str = "auto"
    #: How many of the composition score's best windows (per ratio) the learned ranker sees.
    ranker_shortlist: int = 200

    # --- output -----------------------------------------------------------------------------
    #: Runner-up windows kept per ratio for the debug view.
    debug_candidates: int = 5

    def __post_init__(self) -> None:
        ratios = (self.ratios,) if isinstance(self.ratios, str) else tuple(self.ratios)
        # A ratio named twice (a repeated --ratio, "1:1,1:1") is one crop: merged, first order kept.
        ratios = tuple(dict.fromkeys(r.strip() if isinstance(r, str) else r for r in ratios))
        object.__setattr__(self, "ratios", ratios)
        object.__setattr__(self, "boost", tuple(self.boost))
        object.__setattr__(self, "keep", tuple(self.keep))
        object.__setattr__(self, "boxes", tuple((str(r).strip(), b) for r, b in self.boxes))
        if not ratios:
            raise InvalidOptionsError("at least one ratio is needed")
        for r in ratios:
            parse_ratio(r)
        for region in (*self.boost, *self.keep):
            if not isinstance(region, Region):
                raise InvalidOptionsError(f"boost/keep entries must be Region, got {region!r}")
        for ratio, region in self.boxes:
            parse_ratio(ratio)
            if not isinstance(region, Region):
                raise InvalidOptionsError(f"boxes entries are (ratio, Region), got {region!r}")
        if self.focal_point is not None:
            fx, fy = (float(v) for v in self.focal_point)
            if not (0.0 <= fx <= 1.0 and 0.0 <= fy <= 1.0):
                raise InvalidOptionsError(f"focal_point must be in 0..1, got {self.focal_point}")
            object.__setattr__(self, "focal_point", (fx, fy))
        if self.max_pixels < 1:
            raise InvalidOptionsError("max_pixels must be positive")
        if not isinstance(self.memory_budget, int) or self.memory_budget <= BASELINE_BYTES:
            raise InvalidOptionsError(
                f"memory_budget must be bytes above the process's baseline of {BASELINE_BYTES}, got {self.memory_budget!r}"
            )
        if not 64 <= self.analysis_long_side <= 4096:
            raise InvalidOptionsError("analysis_long_side must be in 64..4096")
        if not 64 <= self.analysis_min_long_side <= self.analysis_long_side:
            raise InvalidOptionsError("analysis_min_long_side must be in 64..analysis_long_side")
        if not 0.1 <= self.min_scale <= 1.0:
            raise InvalidOptionsError("min_scale must be in 0.1..1")
        if not 0.0 < self.scale_step <= 1.0 or not 0.0 < self.position_step <= 0.5:
            raise InvalidOptionsError("scale_step and position_step must be positive fractions")
        if self.ranker not in RANKERS:
            raise InvalidOptionsError(f"ranker must be one of {RANKERS}, got {self.ranker!r}")
        if not 1 <= self.ranker_shortlist <= 10_000:
            raise InvalidOptionsError("ranker_shortlist must be in 1..10000")
        if self.face_small_pass not in SMALL_FACE_PASS_MODES:
            raise InvalidOptionsError(f"face_small_pass must be one of {SMALL_FACE_PASS_MODES}")
        if not 1.0 <= self.face_upscale <= 4.0:
            raise InvalidOptionsError("face_upscale must be in 1..4")
        if not 0.0 < self.face_score_threshold < 1.0 or not 0.0 < self.face_nms_iou < 1.0:
            raise InvalidOptionsError("face thresholds must be in (0, 1)")
        if not all(0.0 <= v <= 1.0 for v in (self.face_saliency_even, self.face_importance_tie, self.face_score_tie)):
            raise InvalidOptionsError("face_saliency_even, face_importance_tie and face_score_tie must be in 0..1")
        if not 0.0 <= self.whole_photo_tolerance <= 0.1:
            raise InvalidOptionsError("whole_photo_tolerance must be in 0..0.1 (a larger stretch shows)")
        if not all(0.0 <= v <= 1.0 for v in (self.plain_border_share, self.plain_margin)):
            raise InvalidOptionsError("plain_border_share and plain_margin must be in 0..1")
        if not 0.0 < self.plain_colour_distance <= 255.0:
            raise InvalidOptionsError("plain_colour_distance must be in (0, 255]")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith(("weight_", "face_margin_", "face_guard_")) and (
                not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value)
            ):
                raise InvalidOptionsError(f"{f.name} must be a finite number >= 0, got {value!r}")

    @classmethod
    def from_ratios(cls, ratios: str | Iterable[str], **overrides: Any) -> CropOptions:
        """Options for ratios given as 'W:H' strings or one comma-separated string ('1:1,16:9')."""
        if isinstance(ratios, str):
            items = tuple(r.strip() for r in ratios.split(",") if r.strip())
        else:
            items = tuple(ratios)
        return cls(ratios=items, **overrides)

    def with_(self, **changes: Any) -> CropOptions:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @property
    def ratio_values(self) -> tuple[float, ...]:
        """Each ratio as W / H."""
        return tuple(parse_ratio(r) for r in self.ratios)

    def box_for(self, ratio: str) -> Region | None:
        """The box given for `ratio` (any spelling of the same W / H), if any."""
        value = parse_ratio(ratio)
        return next((region for r, region in self.boxes if abs(parse_ratio(r) - value) < 1e-9), None)


__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_RATIOS",
    "CropOptions",
    "parse_ratio",
    "parse_size",
    "size_is_of_ratio",
]
