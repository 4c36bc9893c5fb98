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

from .debug import debug_view
from .decode import decode
from .engine import analyse, analyse_image
from .errors import AutocropError, ImageTooLargeError, InvalidOptionsError, UnsupportedImageError
from .job import JobResult, OutputSpec, run_job
from .options import CropOptions, parse_ratio, parse_size
from .render import RenderedCrop, RenderRequest, render_crop, render_crops
from .types import Box, Crop, CropResult, DecodedImage, Face, Region

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
