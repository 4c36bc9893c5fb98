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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .decode import open_image, upright_in_header
from .errors import InvalidOptionsError, OutputTooLargeError
from .master import MASTER_QUALITY, Master
from .options import CropOptions, parse_ratio
from .render import (
    MAX_OUTPUT_SIDE,
    Frame,
    RenderedCrop,
    RenderRequest,
    answer_bound,
    fit_within,
    frame_peak,
    output_bounds,
    output_format,
    render_crops,
    render_plan,
)
from .types import Box, Crop, CropResult

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
    #: The door's output limits, checked from the header before any analysis (else
    #: OutputTooLargeError): the longest side of any output, the output pixels of the whole
    #: call, and the encoded bytes of all outputs together at their worst case
    #: (`render.encoded_bound`), for a door whose answer has a size limit. With `limit_bytes`,
    #: a crop with no size asked is shrunk to the most pixels that fit its share of it.
    limit_side: int = MAX_OUTPUT_SIDE
    limit_pixels: int | None = None
    limit_bytes: int | None = None

    def __post_init__(self) -> None:
        output_format(self.fmt)  # an unknown format fails before any work
        for name in ("quality", "master_quality"):
            if not 1 <= getattr(self, name) <= 100:
                raise InvalidOptionsError(f"{name} must be in 1..100, got {getattr(self, name)}")
        if self.master_side is not None and self.master_side < 1:
            raise InvalidOptionsError(f"master_side must be a positive number of pixels, got {self.master_side}")
        for size in (self.size, *self.sizes.values()):
            if size is not None and max(size) > self.limit_side:
                raise OutputTooLargeError(
                    f"size {size[0]}x{size[1]} is over the largest side of {self.limit_side} pixels"
                )

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
        return self.request_for_box(crop.ratio, crop.box)

    def request_for_box(self, ratio: str, box: Box, share: int = 1) -> RenderRequest:
        """How the crop of `ratio` with `box` is rendered (`share`: how many outputs split
        `limit_bytes`)."""
        size = self.sizes.get(ratio, self.size)
        if size is None and self.max_side is not None:
            size = fit_within(box, self.max_side)
        if size is None and max(box.w, box.h) > self.limit_side:
            size = fit_within(box, self.limit_side)
        if size is None and self.limit_bytes is not None:
            most = self.pixels_within(self.limit_bytes // max(1, share))
            if box.w * box.h > most:
                size = fit_pixels(box, most)
        return RenderRequest(box, size, self.fmt, self.quality, self.no_upscale)

    def pixels_within(self, limit: int) -> int:
        """The most output pixels whose worst-case encoding fits `limit` bytes."""
        per_pixel = answer_bound(self.fmt, self.quality, (1000, 1000)) / 1e6
        return max(1, int((limit - answer_bound(self.fmt, self.quality, (1, 1))) / per_pixel))

    def check_limits(self, frame: Frame, requests: Sequence[RenderRequest]) -> None:
        """OutputTooLargeError when `requests` of `frame` pass a limit (`limit_*`)."""
        bounds = output_bounds(frame, requests)
        for (w, h), _ in bounds:
            if max(w, h) > self.limit_side:
                raise OutputTooLargeError(f"an output of {w}x{h} is over the largest side of {self.limit_side} pixels")
        pixels = sum(w * h for (w, h), _ in bounds)
        if self.limit_pixels is not None and pixels > self.limit_pixels:
            raise OutputTooLargeError(f"the outputs hold {pixels / 1e6:.1f} MP, over the {self.limit_pixels / 1e6:.1f} MP "
                                      "one call may render: ask for fewer ratios or smaller sizes")  # fmt: skip
        worst = sum(b for _, b in bounds)
        if self.limit_bytes is not None and worst > self.limit_bytes:
            raise OutputTooLargeError(
                f"the outputs could take up to {worst / 1e6:.1f} MB as {output_format(self.fmt)} at quality "
                f"{self.quality}, over the {self.limit_bytes / 1e6:.1f} MB an answer can carry: ask for "
                "smaller sizes, fewer ratios, JPEG or WebP, or a lower quality"
            )

    def largest_requests(
        self, options: CropOptions, width: int, height: int, either_way: bool = False
    ) -> list[RenderRequest]:
        """What the job would render if every crop were its ratio's largest window (and the
        master), for an upright `width` x `height` photo (`either_way`: or the other way up,
        where the header cannot tell): an upper bound of the real requests, known from the
        header before any analysis."""
        ratios = [r for r in options.ratios if self.ratios is None or r in self.ratios]
        requests = [self.request_for_box(r, largest_window(parse_ratio(r), width, height, either_way), len(ratios))
                    for r in ratios]  # fmt: skip
        if self.master_side is not None and requests:
            requests.append(Master.of_photo(width, height, self.master_side).request(self.master_quality))
        return requests


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


def fit_pixels(box: Box, pixels: int) -> tuple[int, int]:
    """The box's size scaled down (never up) to at most `pixels` output pixels."""
    scale = min(1.0, (pixels / (box.w * box.h)) ** 0.5)
    return max(1, int(box.w * scale)), max(1, int(box.h * scale))


def largest_window(ratio: float, width: int, height: int, either_way: bool = False) -> Box:
    """The largest box of `ratio` (W / H) in a `width` x `height` photo (`either_way`: the
    larger of its two ways up, for a photo whose orientation only decoding tells)."""
    best = Box(0, 0, 1, 1)
    for w, h in ((width, height), (height, width)) if either_way else ((width, height),):
        bw, bh = (round(h * ratio), h) if w / h > ratio else (w, round(w / ratio))
        if bw * bh > best.w * best.h:
            best = Box(0, 0, max(1, bw), max(1, bh))
    return best


def plan_job(data: bytes, options: CropOptions, spec: OutputSpec) -> None:
    """Refuse, from the header and before any analysis, a photo whose rendering `spec` asks
    for could pass the spec's limits (OutputTooLargeError) or `options.memory_budget`
    (ImageTooLargeError, `autocrop.memory`)."""
    if not spec.render:
        return
    im = open_image(data, options.max_pixels)
    frame = Frame.of(im, im.size, "JPEG" if im.format == "MPO" else str(im.format), data)
    upright = upright_in_header(im, data)
    requests = spec.largest_requests(options, *(upright or im.size), either_way=upright is None)
    spec.check_limits(frame, requests[: len(requests) - (spec.master_side is not None)])
    render_plan(data, requests, max_pixels=options.max_pixels, memory_budget=options.memory_budget)


def plan_frame(frame: Frame, data_bytes: int, options: CropOptions, spec: OutputSpec) -> int:
    """The peak RSS `plan_job` counts for a photo whose header says `frame` (bytes), upright."""
    requests = spec.largest_requests(options, *frame.size)
    return frame_peak(frame, data_bytes, requests)(1)


def run_job(data: bytes, options: CropOptions, spec: OutputSpec = OutputSpec()) -> JobResult:
    """Analyse the photo in `data` and render what `spec` asks for; a photo whose outputs
    cannot fit the memory budget is refused before the analysis (`plan_job`)."""
    from .debug import debug_view
    from .engine import analyse

    spec.check(options)
    plan_job(data, options, spec)
    result = analyse(data, options)
    started = time.perf_counter()
    crops = tuple(c for c in result.crops if spec.ratios is None or c.ratio in spec.ratios)
    outputs: tuple[RenderedCrop, ...] = ()
    master: RenderedCrop | None = None
    if spec.render and crops:
        requests = [spec.request_for_box(c.ratio, c.box, len(crops)) for c in crops]
        if spec.master_side is not None:
            requests.append(Master.of_photo(result.width, result.height, spec.master_side).request(spec.master_quality))
        rendered = render_crops(data, requests, max_pixels=options.max_pixels, threads=spec.render_threads,
                                memory_budget=options.memory_budget)  # fmt: skip
        outputs = tuple(rendered[: len(crops)])
        if spec.master_side is not None and not rendered[-1].flattened:
            master = rendered[-1]
    debug_png = (
        debug_view(data, result, max_pixels=options.max_pixels, memory_budget=options.memory_budget)
        if spec.debug
        else None
    )
    render_ms = round((time.perf_counter() - started) * 1000.0, 2)
    return JobResult(result, crops if spec.render else (), outputs, debug_png, {"render_ms": render_ms}, master)


__all__ = [
    "JobResult",
    "OutputSpec",
    "crop_file_name",
    "fit_within",
    "largest_window",
    "plan_frame",
    "plan_job",
    "ratio_slug",
    "run_job",
]
