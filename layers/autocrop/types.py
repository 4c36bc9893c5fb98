"""Value types of the engine: frozen dataclasses whose fields carry their units.

- `Box`: integer pixels in the *upright* (EXIF orientation applied) full-resolution photo.
- `Region`: fractions (0..1) of the upright photo, so a hint does not depend on resolution.
- `DecodedImage.rgb` and `CropResult.saliency`: the reduced *analysis* image and its map.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InvalidOptionsError


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in upright full-resolution pixels; (x, y) is the top-left corner."""

    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    @property
    def area(self) -> int:
        return self.w * self.h

    @classmethod
    def from_xyxy(cls, x0: float, y0: float, x1: float, y1: float) -> Box:
        """Round a float corner pair to the integer box that covers it."""
        ix0, iy0 = math.floor(x0), math.floor(y0)
        return cls(ix0, iy0, max(0, math.ceil(x1) - ix0), max(0, math.ceil(y1) - iy0))

    def to_list(self) -> list[int]:
        """[x, y, w, h], the JSON form."""
        return [self.x, self.y, self.w, self.h]

    def intersection(self, other: Box) -> int:
        """Area shared with `other`, in pixels."""
        w = min(self.right, other.right) - max(self.x, other.x)
        h = min(self.bottom, other.bottom) - max(self.y, other.y)
        return max(0, w) * max(0, h)

    def contains(self, other: Box) -> bool:
        """True when `other` lies wholly inside this box."""
        return self.x <= other.x and self.y <= other.y and other.right <= self.right and other.bottom <= self.bottom


@dataclass(frozen=True)
class Region:
    """A hint region in fractions (0..1) of the upright photo, with a weight.

    As a `boost`, `weight` is the share of the photo's total saliency added, spread evenly
    over the region (1.0 makes it as important as everything else together), like the
    boost of smartcrop.js. As a `keep` region, the crop must contain it when it can.
    """

    x: float
    y: float
    w: float
    h: float
    weight: float = 1.0

    def __post_init__(self) -> None:
        values = (self.x, self.y, self.w, self.h, self.weight)
        if not all(math.isfinite(v) for v in values):
            raise InvalidOptionsError(f"region values must be finite numbers, got {self}")
        if self.w <= 0 or self.h <= 0 or self.x < 0 or self.y < 0:
            raise InvalidOptionsError(f"region must have a positive size inside the photo: {self}")
        if self.x + self.w > 1 + 1e-9 or self.y + self.h > 1 + 1e-9:
            raise InvalidOptionsError(f"region must lie within 0..1 of the photo: {self}")
        if self.weight < 0:
            raise InvalidOptionsError(f"region weight must be >= 0, got {self.weight}")

    @classmethod
    def from_pixels(
        cls, x: float, y: float, w: float, h: float, width: int, height: int, weight: float = 1.0
    ) -> Region:
        """A region given in pixels of an upright `width` x `height` photo (clipped to it)."""
        x0, y0 = max(0.0, x / width), max(0.0, y / height)
        x1, y1 = min(1.0, (x + w) / width), min(1.0, (y + h) / height)
        return cls(x0, y0, x1 - x0, y1 - y0, weight)

    def to_pixels(self, width: int, height: int) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in pixels of an upright `width` x `height` photo."""
        return (
            self.x * width,
            self.y * height,
            (self.x + self.w) * width,
            (self.y + self.h) * height,
        )


@dataclass(frozen=True)
class Face:
    """A detected face: its box in upright full-resolution pixels and the detector's score."""

    box: Box
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"box": self.box.to_list(), "confidence": round(float(self.confidence), 4)}


@dataclass(frozen=True)
class FaceReport:
    """What one crop did with the photo's detected faces.

    `kept`, `dropped` and `cut` count every detected face by its box: wholly inside, wholly
    outside, partly inside (a face too small to protect may be cut). `protected_cut` counts
    the protected faces (at least `face_min_size`) the crop slices: 0 unless no window of the
    ratio could keep or drop every one of them whole, and then the least important ones were
    given up. `heads_cut`: protected faces kept or dropped whole whose guard (the face with
    the usual head around it, `face_guard_*`) the crop slices, where no window of the ratio
    could keep every head whole. (The breakdown's `head_margins_sliced` charges the wider
    head margins, `face_margin_*`, by how much is sliced: it can be below 0 while
    `heads_cut` is 0; `autocrop.scoring.TERM_MEANINGS`.)
    """

    kept: int = 0
    dropped: int = 0
    cut: int = 0
    protected_cut: int = 0
    heads_cut: int = 0

    @property
    def all_protected_whole(self) -> bool:
        return self.protected_cut == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept": int(self.kept),
            "dropped": int(self.dropped),
            "cut": int(self.cut),
            "protected_cut": int(self.protected_cut),
            "heads_cut": int(self.heads_cut),
            "all_protected_whole": self.all_protected_whole,
        }


@dataclass(frozen=True)
class Crop:
    """The chosen crop for one ratio, with the score that chose it, term by term.

    `breakdown` holds each term's weighted contribution, so its values sum to `score`.
    `saliency_kept` is the share of the photo's saliency (boosts included) inside the box.
    """

    ratio: str
    box: Box
    score: float
    breakdown: Mapping[str, float]
    saliency_kept: float
    faces_kept: int
    chosen_by: str = "composition"
    face_report: FaceReport = field(default_factory=FaceReport)
    #: What a person should know about this crop (a box override that slices a face, or
    #: one that does not fit the photo and was set aside); only present when there is some.
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio,
            "box": self.box.to_list(),
            "score": round(float(self.score), 4),
            # + 0.0: a term that is zero reads 0.0, never -0.0
            "breakdown": {k: round(float(v), 4) + 0.0 for k, v in self.breakdown.items()},
            "saliency_kept": round(float(self.saliency_kept), 4),
            "faces_kept": int(self.faces_kept),
            "face_report": self.face_report.to_dict(),
            "chosen_by": self.chosen_by,
            **({"warnings": list(self.warnings)} if self.warnings else {}),
        }


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A photo decoded for analysis.

    `rgb` is the reduced, upright analysis image (uint8 HxWx3; alpha composited on white);
    `width` x `height` is the upright full resolution that boxes refer to.
    """

    rgb: np.ndarray = field(repr=False)
    width: int
    height: int
    format: str
    orientation: int = 1
    icc_profile: bytes | None = field(default=None, repr=False)
    mode: str = "RGB"

    @property
    def analysis_size(self) -> tuple[int, int]:
        """(width, height) of the analysis image."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])

    @property
    def scale(self) -> tuple[float, float]:
        """Full-resolution pixels per analysis pixel, (x, y)."""
        aw, ah = self.analysis_size
        return self.width / aw, self.height / ah


@dataclass(frozen=True, eq=False)
class CropResult:
    """Everything `analyse` found: one crop per requested ratio, the faces, and how long it took.

    `saliency` (float32 in [0, 1] at analysis size), `candidates` (the runner-up boxes per
    ratio, for the debug view) and `image` (the upright RGB analysis image the engine saw, so
    the debug view needs no second decode) are left out of `to_dict`.
    """

    width: int
    height: int
    crops: tuple[Crop, ...]
    faces: tuple[Face, ...]
    timings: Mapping[str, float]
    models: Mapping[str, str]
    saliency: np.ndarray = field(repr=False)
    candidates: Mapping[str, tuple[Box, ...]] = field(default_factory=dict, repr=False)
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    def crop(self, ratio: str) -> Crop:
        """The crop chosen for `ratio` (as it was requested)."""
        for c in self.crops:
            if c.ratio == ratio:
                return c
        raise KeyError(ratio)

    def focal_point(self, crop: Crop) -> tuple[float, float]:
        """The centre of the crop's box as fractions (0..1) of the upright photo's width and
        height: the focal point other resizers take (imgproxy `g:fp:X:Y`, Cloudinary
        `g_xy_center`, thumbor's focal points), so they crop around what this analysis found."""
        return (
            round((crop.box.x + crop.box.w / 2) / self.width, 4),
            round((crop.box.y + crop.box.h / 2) / self.height, 4),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: width, height, crops (each with its focal point), faces, timings
        (ms), models."""
        return {
            "width": int(self.width),
            "height": int(self.height),
            "crops": [{**c.to_dict(), "focal_point": list(self.focal_point(c))} for c in self.crops],
            "faces": [f.to_dict() for f in self.faces],
            "timings": {k: round(float(v), 2) for k, v in self.timings.items()},
            "models": dict(self.models),
        }


__all__ = ["Box", "Crop", "CropResult", "DecodedImage", "Face", "Region"]
