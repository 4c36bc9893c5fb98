"""autocrop: the best crop of a photo for every aspect ratio, in one pass, never slicing a face.

import autocrop
result = autocrop.analyse(open("photo.jpg", "rb").read(), autocrop.CropOptions.from_ratios("1:1,16:9"))
jpeg = autocrop.render_crop(data, result.crop("16:9").box, size=(1920, 1080))
# every ratio's crop from one decode of the photo:
crops = autocrop.render_crops(data, [autocrop.RenderRequest(c.box) for c in result.crops])
# or the whole job every door runs: analysis, rendered crops, the crops.json manifest
done = autocrop.run_job(data, options, autocrop.OutputSpec(size=(1080, 1080), fmt="webp"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .decode import decode
from .engine import analyse, analyse_image
from .errors import AutocropError, ImageTooLargeError, InvalidOptionsError, UnsupportedImageError
from .options import CropOptions, parse_ratio, parse_size
from .types import Box, Crop, CropResult, DecodedImage, Face, Region

if TYPE_CHECKING:
    from .debug import debug_view
    from .job import JobResult, OutputSpec, run_job
    from .render import RenderedCrop, RenderRequest, render_crop, render_crops

#: Imported on first use: an analysis needs none of them (a process's first answer is quicker).
_LAZY = {
    "debug_view": "debug",
    "JobResult": "job", "OutputSpec": "job", "run_job": "job",
    "RenderedCrop": "render", "RenderRequest": "render", "render_crop": "render", "render_crops": "render",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AutocropError",
    "Box",
    "Crop",
    "CropOptions",
    "CropResult",
    "DecodedImage",
    "Face",
    "ImageTooLargeError",
    "InvalidOptionsError",
    "JobResult",
    "OutputSpec",
    "Region",
    "RenderRequest",
    "RenderedCrop",
    "UnsupportedImageError",
    "analyse",
    "analyse_image",
    "debug_view",
    "decode",
    "parse_ratio",
    "parse_size",
    "render_crop",
    "render_crops",
    "run_job",
]
