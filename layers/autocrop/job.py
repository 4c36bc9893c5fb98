"""The one job every door runs: photo bytes + options -> analysis -> rendered crops + manifest.

    spec = OutputSpec(size=(1080, 1080), fmt="webp")
    done = run_job(data, CropOptions.from_ratios("1:1,16:9"), spec)
    for crop, out in done.rendered():            # (Crop, RenderedCrop) per ratio
        open(crop_file_name(crop.ratio, spec.fmt, "photo_"), "wb").write(out.data)
    json.dumps(done.manifest())                  # what crops.json / --json / the API hold

The CLI, the S3 function and the API call `run_job`; each adds only its own translation
(file names, object keys and metadata, HTTP responses). The job decodes the photo once for
the analysis and once for every crop it renders (`render_crops`), and renders only what the
door asked for: the crops of `OutputSpec.ratios`, at the size each one gets, the master
(`autocrop.master`, from the same decode) and the debug view when asked.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidOptionsError
from .master import MASTER_QUALITY, Master
from .options import CropOptions
from .render import RenderedCrop, RenderRequest, fit_within, output_format, render_crops
from .types import Crop, CropResult

#: File extension of each output format (`output_format` names).
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


def ratio_slug(ratio: str) -> str:
    """File-name form of a ratio: '16:9' -> '16x9', '1.91:1' -> '1.91x1'."""
    return ratio.replace(":", "x")


def crop_file_name(ratio: str, fmt: str, prefix: str = "") -> str:
    """The name a crop is written under: `<prefix><ratio slug>.<extension>` ('photo_16x9.jpg')."""
    return f"{prefix}{ratio_slug(ratio)}.{EXTENSIONS[output_format(fmt)]}"


@dataclass(frozen=True)
class OutputSpec:
    """What the job renders, and how.

    Each crop's size: its ratio's entry in `sizes`, else `size`, else (with `max_side`) its
    own size shrunk to fit `max_side` (previews), else full resolution. `render=False` runs
    the analysis alone (boxes and scores, no pixels written). `master_side` also renders the
    photo's master (`autocrop.master`: upright, long side at most that, JPEG at
    `master_quality`) from the crops' decode.
    """

    size: tuple[int, int] | None = None
    sizes: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    max_side: int | None = None
    fmt: str = "jpeg"
    quality: int = 85
    no_upscale: bool = False
    #: The ratios to render (None: every ratio analysed).
    ratios: tuple[str, ...] | None = None
    render: bool = True
    debug: bool = False
    #: Threads encoding one photo's crops (None: the cores; 1 when the door runs processes).
    render_threads: int | None = None
    #: Long side of the master rendered with the crops (None: no master).
    master_side: int | None = None
    master_quality: int = MASTER_QUALITY

    def __post_init__(self) -> None:
        output_format(self.fmt)  # an unknown format fails before any work
        for name in ("quality", "master_quality"):
            if not 1 <= getattr(self, name) <= 100:
                raise InvalidOptionsError(f"{name} must be in 1..100, got {getattr(self, name)}")
        if self.master_side is not None and self.master_side < 1:
            raise InvalidOptionsError(f"master_side must be a positive number of pixels, got {self.master_side}")

    def check(self, options: CropOptions) -> None:
        """Every ratio this spec names is one the options analyse."""
        named = set(self.sizes) | set(self.ratios or ())
        unknown = sorted(named - set(options.ratios))
        if unknown:
            raise InvalidOptionsError(
                f"output settings name ratios that are not cropped: {', '.join(unknown)} "
                f"(cropped: {', '.join(options.ratios)})"
            )

    def request_for(self, crop: Crop) -> RenderRequest:
        """How `crop` is rendered."""
        size = self.sizes.get(crop.ratio, self.size)
        if size is None and self.max_side is not None:
            size = fit_within(crop.box, self.max_side)
        return RenderRequest(crop.box, size, self.fmt, self.quality, self.no_upscale)


@dataclass(frozen=True, eq=False)
class JobResult:
    """The analysis, the rendered crops (in `crops` order), the master and the debug view if
    asked (no master for a photo with transparency: a JPEG cannot hold it)."""

    result: CropResult
    crops: tuple[Crop, ...]
    outputs: tuple[RenderedCrop, ...]
    debug_png: bytes | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    master: RenderedCrop | None = None

    def master_record(self) -> Master | None:
        """What the rendered master is (its size against the photo's), or None without one."""
        if self.master is None:
            return None
        return Master((self.result.width, self.result.height), (self.master.width, self.master.height))

    def rendered(self) -> Iterator[tuple[Crop, RenderedCrop]]:
        """(crop, its rendered image) for each rendered crop."""
        return zip(self.crops, self.outputs, strict=True)

    def manifest(self) -> dict[str, Any]:
        """The analysis as JSON (`CropResult.to_dict`) with each rendered crop's size, media
        type and upscaled flag in its entry, and the job's timings (ms)."""
        out = self.result.to_dict()
        described = {crop.ratio: image.describe() for crop, image in self.rendered()}
        for entry in out["crops"]:
            entry.update(described.get(entry["ratio"], {}))
        out["timings"] = {**out["timings"], **self.timings}
        return out


def run_job(data: bytes, options: CropOptions, spec: OutputSpec = OutputSpec()) -> JobResult:
    """Analyse the photo in `data` and render what `spec` asks for."""
    from .debug import debug_view
    from .engine import analyse

    spec.check(options)
    result = analyse(data, options)
    started = time.perf_counter()
    crops = tuple(c for c in result.crops if spec.ratios is None or c.ratio in spec.ratios)
    outputs: tuple[RenderedCrop, ...] = ()
    master: RenderedCrop | None = None
    if spec.render and crops:
        requests = [spec.request_for(c) for c in crops]
        if spec.master_side is not None:
            requests.append(Master.of_photo(result.width, result.height, spec.master_side).request(spec.master_quality))
        rendered = render_crops(data, requests, max_pixels=options.max_pixels, threads=spec.render_threads)
        outputs = tuple(rendered[: len(crops)])
        if spec.master_side is not None and not rendered[-1].flattened:
            master = rendered[-1]
    debug_png = debug_view(data, result, max_pixels=options.max_pixels) if spec.debug else None
    render_ms = round((time.perf_counter() - started) * 1000.0, 2)
    return JobResult(result, crops if spec.render else (), outputs, debug_png, {"render_ms": render_ms}, master)


__all__ = ["JobResult", "OutputSpec", "crop_file_name", "fit_within", "ratio_slug", "run_job"]
