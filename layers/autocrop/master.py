"""The master: a photo once more, upright and at most MASTER_SIDE (2560) px long, as a JPEG
that crop URLs render from instead of the full-resolution original.

Serving a crop URL from the stored analysis still meant fetching and decoding the 12 MP
original, most of the request. The upload function renders the master from the decode its
crops already use (one more `RenderRequest`: the whole upright frame at the master's size)
and stores it beside crops.json, which records it (`Master.to_dict`). Boxes stay in upright
full-resolution photo pixels everywhere; `Master.box_in` maps one into master pixels and
`Master.serves` says whether the master holds enough pixels for a size (else the original
serves, so the master never makes a crop blurrier than the original would).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .render import RenderRequest, fit_within, trim_to_ratio
from .types import Box

#: Long side of the master (px). Crop URLs ask for page sizes, and the engine's boxes are
#: often well inside the frame (the crop URL benchmark's 16:9 boxes: 56-100% of the long
#: side): at 2560 a 1280 px-wide crop still comes from the master for a box half the photo's
#: long side, a 1920 px one for three quarters. A 2560 x 1920 master decodes in 13 ms where
#: the 12 MP original takes 31 ms even at 1/4 DCT scale (47 ms whole; entropy decoding
#: dominates); 2048 (8 ms) would send the benchmark's portrait's 1280 x 720 crop (a box 56%
#: of its long side) to the original. Larger sizes go to the original.
MASTER_SIDE = 2560
#: JPEG quality of the master, with 4:2:0 chroma (Pillow's default). Measured on the crop URL
#: benchmark's 12 MP photos (2560 px masters; 16:9 crops at 1280 x 720 and 640 x 360):
#: 4:2:0 q90 774 KB, decoded in 13 ms, its crops 1.1 levels (mean abs, of 255) from the
#: original's; 4:4:4 q90 997 KB, 18 ms, 0.9 levels. Both are under the noise of the output's
#: own JPEG q85 encoding (1.9 levels), so the smaller and faster one.
MASTER_QUALITY = 90


@dataclass(frozen=True)
class Master:
    """A photo's master: the photo's upright full-resolution size and the master's (px)."""

    photo_size: tuple[int, int]
    size: tuple[int, int]

    @classmethod
    def of_photo(cls, width: int, height: int, side: int = MASTER_SIDE) -> Master:
        """The master of an upright `width` x `height` photo: long side at most `side`, never
        enlarged (a photo already that small gets a master of its own size: upright, JPEG)."""
        return cls((width, height), fit_within(Box(0, 0, width, height), side))

    @classmethod
    def from_dict(cls, record: Any, photo_size: tuple[Any, Any]) -> Master | None:
        """The master a crops.json record describes (None: no record, or not one this reads)."""
        if not isinstance(record, Mapping):
            return None
        try:
            size = int(record["width"]), int(record["height"])
            photo = int(photo_size[0]), int(photo_size[1])
        except (KeyError, TypeError, ValueError):
            return None
        if min(*size, *photo) <= 0 or size[0] > photo[0] or size[1] > photo[1]:
            return None
        return cls(photo, size)

    @property
    def scale(self) -> tuple[float, float]:
        """Master px per photo px, along x and y."""
        return self.size[0] / self.photo_size[0], self.size[1] / self.photo_size[1]

    def to_dict(self) -> dict[str, Any]:
        """The crops.json form: width, height, scale ([x, y]: a photo box times it is in master px)."""
        return {"width": self.size[0], "height": self.size[1], "scale": list(self.scale)}

    def request(self, quality: int = MASTER_QUALITY) -> RenderRequest:
        """How the job renders it: the whole upright photo at the master's size, as JPEG. The
        filter is bilinear: the master is resampled again whenever it serves (never enlarged),
        and crops from a bilinear master are as close to the original's as from a LANCZOS one
        (1.54 against 1.55 levels at 1280 x 720, 1.16 against 1.17 at 640 x 360), for 40% of
        the resize (12 MP -> 2560 px: 65 against 156 ms here)."""
        return RenderRequest(Box(0, 0, *self.photo_size), self.size, "jpeg", quality, resample="bilinear")

    def box_in(self, box: Box) -> Box:
        """`box` (upright photo px) in master px, each edge rounded to the nearest pixel."""
        sx, sy = self.scale
        x0, y0 = round(box.x * sx), round(box.y * sy)
        x1 = min(self.size[0], max(x0 + 1, round(box.right * sx)))
        y1 = min(self.size[1], max(y0 + 1, round(box.bottom * sy)))
        return Box(x0, y0, x1 - x0, y1 - y0)

    def serves(self, box: Box, size: tuple[int, int]) -> bool:
        """Whether the master renders `box` at `size` without enlarging it: the part of the
        box the size's ratio keeps has at least `size` master pixels."""
        x0, y0, x1, y1 = trim_to_ratio(self.box_in(box), size)
        return x1 - x0 >= size[0] - 1e-6 and y1 - y0 >= size[1] - 1e-6


__all__ = ["MASTER_QUALITY", "MASTER_SIDE", "Master"]
