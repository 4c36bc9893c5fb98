"""Per-photo overrides: what a person says about one photo's crops, kept with the photo, and
the version of the crops they lead to.

    {"focal_point": [x, y], "keep": [[x, y, w, h], ...], "boxes": {"16:9": [x, y, w, h]}}

Every number is a fraction (0..1) of the upright photo, so an override does not depend on the
photo's resolution and survives a replaced photo of another size. A focal point and keep
regions are the engine's own hints (`CropOptions.focal_point`, `CropOptions.keep`); a box is
the crop of its ratio, exactly (`CropOptions.boxes`): it wins over the engine, which still
measures it against the face rule and warns when it slices a detected face. A box is checked
in pixels of the photo it crops (`box_fits`: at least MIN_BOX_SIDE px, of its ratio within a
pixel); on a photo where it is not, the engine sets it aside and says why.

They arrive as JSON (the API, the CLI's sidecar file), as S3 user metadata at upload
(`autocrop-focus: x,y`, `autocrop-keep: x,y,w,h[;x,y,w,h...]`, the way CMSes store a focal
point) or as CLI flags; each way is parsed here, strictly: anything malformed or out of
range is an `InvalidOptionsError` naming what is wrong. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidOptionsError
from .options import DEFAULT_MAX_PIXELS, CropOptions, parse_ratio
from .types import Box, Region

#: S3 user metadata names (lower case, as S3 returns them) of the upload-time overrides.
METADATA_FOCUS = "autocrop-focus"
METADATA_KEEP = "autocrop-keep"
#: A local photo's overrides file: `beach.jpg` -> `beach.jpg.autocrop.json` (`sidecar_path`).
SIDECAR_SUFFIX = ".autocrop.json"
#: The JSON document's fields.
FIELDS = ("focal_point", "keep", "boxes")
#: Keep regions and boxes one photo may carry: enough for any page, small enough to check fast.
MAX_KEEP = 16
MAX_BOXES = 16
#: A box's shorter side, at least, in pixels of the photo it crops. Every output of a box is
#: resized from it: below 16 px it is one JPEG colour block (4:2:0 codes colour in 16x16),
#: nothing in it can be made out, each output is an upscaled smear, and one pixel of rounding
#: is over 6% of its shape. A fraction that small is a slip (or a photo far larger than the one
#: the box was drawn on), not a crop anyone means.
MIN_BOX_SIDE = 16
#: How far a box's side may be from its ratio's shape, in pixels of the photo: what drawing it
#: on whole pixels can miss by. More is a box of another shape, stretched in every output (a
#: relative tolerance would let a large box be tens of pixels off).
SHAPE_TOLERANCE_PX = 1.0
#: Hex digits of a crop version (64 bits of SHA-256: no two versions of a photo collide).
VERSION_DIGITS = 16


def _fraction(value: Any, what: str) -> float:
    """A finite number in 0..1 (JSON true/false and strings are refused, as are NaN and Infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidOptionsError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer too large for any float: out of range as well
        number = math.inf
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise InvalidOptionsError(f"{what} must be a fraction in 0..1 of the photo, got {value!r}")
    return number


def _numbers(value: Any, count: int, what: str) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != count:
        shape = "[x, y]" if count == 2 else "[x, y, w, h]"
        raise InvalidOptionsError(f"{what} is {shape} (fractions of the photo), got {value!r}")
    names = "xy" if count == 2 else ("x", "y", "w", "h")
    return tuple(_fraction(v, f"{what} {name}") for v, name in zip(value, names))


def _region(value: Any, what: str) -> Region:
    x, y, w, h = _numbers(value, 4, what)
    if w <= 0 or h <= 0:
        raise InvalidOptionsError(f"{what} needs a positive width and height, got {list(value)!r}")
    if x + w > 1 + 1e-9 or y + h > 1 + 1e-9:
        raise InvalidOptionsError(
            f"{what} reaches past the photo's edge (x + w and y + h are at most 1): {list(value)!r}"
        )
    return Region(x, y, min(w, 1 - x), min(h, 1 - y))


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose names are unique (which of two values was meant cannot be told)."""
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidOptionsError(f"a JSON object names {', '.join(map(repr, repeated))} more than once")
    return dict(pairs)


def _text_numbers(text: str, count: int, what: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != count:
        raise InvalidOptionsError(f"{what} is {count} comma-separated fractions, got {text!r}")
    try:
        return [float(p) for p in parts]
    except ValueError as e:
        raise InvalidOptionsError(f"{what} is {count} comma-separated fractions, got {text!r}") from e


def box_pixels(region: Region, width: int, height: int) -> Box:
    """A box override (fractions) in pixels of an upright `width` x `height` photo."""
    x0, y0 = round(region.x * width), round(region.y * height)
    x1 = min(width, max(x0 + 1, round((region.x + region.w) * width)))
    y1 = min(height, max(y0 + 1, round((region.y + region.h) * height)))
    return Box(x0, y0, x1 - x0, y1 - y0)


def box_fits(region: Region, ratio: str, width: int, height: int) -> str | None:
    """Why the box `region` cannot be the `ratio` crop of a `width` x `height` photo (None: it
    can): measured in the photo's pixels, it is under MIN_BOX_SIDE or off its ratio's shape."""
    named = f"the {ratio} box {[region.x, region.y, region.w, region.h]}"
    box = box_pixels(region, width, height)
    if min(box.w, box.h) < MIN_BOX_SIDE:
        return (f"{named} is {box.w}x{box.h} px on this {width}x{height} photo: a box is at least "
                f"{MIN_BOX_SIDE} px on its shorter side")  # fmt: skip
    # Its sides at the photo's size, before rounding to whole pixels (which moves each by under
    # one, so a box given exactly is never refused for it).
    w, h, value = region.w * width, region.h * height, parse_ratio(ratio)
    off = min(abs(h - w / value), abs(w - h * value))
    if off > SHAPE_TOLERANCE_PX:
        return (f"{named} is {w:.1f}x{h:.1f} px on this {width}x{height} photo, not {ratio}: a side is "
                f"{off:.1f} px from its shape (a box is of its ratio within {SHAPE_TOLERANCE_PX:g} px)")  # fmt: skip
    return None


@dataclass(frozen=True)
class Overrides:
    """One photo's overrides: a focal point, keep regions and exact boxes per ratio (fractions)."""

    focal_point: tuple[float, float] | None = None
    keep: tuple[Region, ...] = ()
    boxes: tuple[tuple[str, Region], ...] = ()

    def __post_init__(self) -> None:
        if len(self.keep) > MAX_KEEP:
            raise InvalidOptionsError(f"at most {MAX_KEEP} keep regions, got {len(self.keep)}")
        if len(self.boxes) > MAX_BOXES:
            raise InvalidOptionsError(f"at most {MAX_BOXES} boxes, got {len(self.boxes)}")
        values = [parse_ratio(ratio) for ratio, _ in self.boxes]
        for i, value in enumerate(values):
            if any(abs(value - other) < 1e-9 for other in values[:i]):
                raise InvalidOptionsError(f"two boxes name the same ratio ({self.boxes[i][0]})")

    @classmethod
    def from_json(cls, document: Any) -> Overrides:
        """The overrides a JSON document holds (the API's body, a sidecar, overrides.json)."""
        if not isinstance(document, Mapping):
            raise InvalidOptionsError(
                f"overrides are a JSON object with {', '.join(FIELDS)}, got {type(document).__name__}"
            )
        unknown = sorted(set(document) - set(FIELDS))
        if unknown:
            raise InvalidOptionsError(
                f"unknown override field(s) {', '.join(map(repr, unknown))}: the fields are {', '.join(FIELDS)}"
            )
        focal = document.get("focal_point")
        # (null is "not set"; any other value of the wrong type is refused, falsy ones too)
        keep = [] if document.get("keep") is None else document["keep"]
        boxes = {} if document.get("boxes") is None else document["boxes"]
        if not isinstance(keep, list):
            raise InvalidOptionsError(f"keep is a list of [x, y, w, h], got {keep!r}")
        if not isinstance(boxes, Mapping):
            raise InvalidOptionsError(f'boxes is an object {{"W:H": [x, y, w, h]}}, got {boxes!r}')
        for ratio in boxes:
            parse_ratio(ratio)
        return cls(
            focal_point=None if focal is None else _numbers(focal, 2, "focal_point"),  # type: ignore[arg-type]
            keep=tuple(_region(r, f"keep[{i}]") for i, r in enumerate(keep)),
            boxes=tuple((str(ratio).strip(), _region(box, f"boxes[{ratio!r}]")) for ratio, box in boxes.items()),
        )

    @classmethod
    def from_text(cls, text: str | bytes) -> Overrides:
        """`from_json` of a document's text (bad JSON is an InvalidOptionsError too)."""
        try:
            document = json.loads(text, object_pairs_hook=_unique_names)
        except ValueError as e:
            raise InvalidOptionsError(f"overrides are JSON: {e}") from e
        except RecursionError as e:  # nested deeper than the parser goes: no overrides document is
            raise InvalidOptionsError("overrides are JSON nested a few levels deep, not thousands") from e
        return cls.from_json(document)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> Overrides:
        """The overrides set at upload as S3 user metadata (`autocrop-focus`, `autocrop-keep`)."""
        return cls._from_texts(metadata.get(METADATA_FOCUS), METADATA_FOCUS, metadata.get(METADATA_KEEP), METADATA_KEEP)

    @classmethod
    def from_params(cls, focal_point: str | None, keep: str | None) -> Overrides:
        """A request's parameters (POST /v1/crop), spelled as the metadata:
        focal_point=x,y and keep=x,y,w,h[;x,y,w,h...]."""
        return cls._from_texts(focal_point, "focal_point", keep, "keep")

    @classmethod
    def _from_texts(cls, focus: str | None, focus_name: str, keep: str | None, keep_name: str) -> Overrides:
        """A focal point "x,y" and keep regions "x,y,w,h[;...]", as text named as given."""
        focus, keep = (focus or "").strip(), (keep or "").strip()
        return cls(
            focal_point=_numbers(_text_numbers(focus, 2, focus_name), 2, focus_name) if focus else None,  # type: ignore[arg-type]
            keep=tuple(
                _region(_text_numbers(part, 4, keep_name), keep_name) for part in keep.split(";") if part.strip()
            ),  # fmt: skip
        )

    @classmethod
    def from_flags(cls, focal_point: str | None, keep: Iterable[str] = (), boxes: Iterable[str] = ()) -> Overrides:
        """The CLI's flags: --focal-point X,Y, --keep X,Y,W,H (repeatable), --box W:H=X,Y,W,H (repeatable)."""
        parsed_boxes = []
        for entry in boxes:
            ratio, sep, values = entry.partition("=")
            if not sep:
                raise InvalidOptionsError(f"--box is W:H=X,Y,W,H (fractions), got {entry!r}")
            parsed_boxes.append((ratio.strip(), _region(_text_numbers(values, 4, f"--box {ratio}"), f"--box {ratio}")))
        for ratio, _ in parsed_boxes:
            parse_ratio(ratio)
        return cls(
            focal_point=_numbers(_text_numbers(focal_point, 2, "--focal-point"), 2, "--focal-point")
            if focal_point
            else None,  # type: ignore[arg-type]
            keep=tuple(_region(_text_numbers(k, 4, "--keep"), "--keep") for k in keep),
            boxes=tuple(parsed_boxes),
        )

    def merged(self, over: Overrides) -> Overrides:
        """These overrides with each field that `over` sets taken from `over` (boxes per ratio)."""
        boxes = dict(self.boxes)
        for ratio, region in over.boxes:
            boxes = {r: b for r, b in boxes.items() if abs(parse_ratio(r) - parse_ratio(ratio)) >= 1e-9}
            boxes[ratio] = region
        return Overrides(
            over.focal_point if over.focal_point is not None else self.focal_point,
            over.keep or self.keep,
            tuple(boxes.items()),
        )

    @property
    def is_empty(self) -> bool:
        return self.focal_point is None and not self.keep and not self.boxes

    def to_json(self) -> dict[str, Any]:
        """The JSON form (what `from_json` reads back), with only the fields set."""
        out: dict[str, Any] = {}
        if self.focal_point is not None:
            out["focal_point"] = list(self.focal_point)
        if self.keep:
            out["keep"] = [[r.x, r.y, r.w, r.h] for r in self.keep]
        if self.boxes:
            out["boxes"] = {ratio: [r.x, r.y, r.w, r.h] for ratio, r in self.boxes}
        return out

    def check_fits(self, width: int, height: int) -> None:
        """InvalidOptionsError unless every box has its ratio's shape on a `width` x `height` photo."""
        for ratio, region in self.boxes:
            why = box_fits(region, ratio, width, height)
            if why:
                raise InvalidOptionsError(why)

    def apply(self, options: CropOptions) -> CropOptions:
        """`options` with these overrides as its hints (a focal point or keep regions given here win)."""
        return options.with_(
            focal_point=self.focal_point if self.focal_point is not None else options.focal_point,
            keep=self.keep or options.keep,
            boxes=tuple({**dict(options.boxes), **dict(self.boxes)}.items()),
        )


def photo_size(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """The upright size of the photo in `data` (what box overrides are checked against), from
    its header where that tells (a PNG's eXIf chunk may follow its pixels: then decoded)."""
    from .decode import exif_orientation, open_image, upright_in_header, upright_size

    im = open_image(data, max_pixels)
    return upright_in_header(im, data) or upright_size(*im.size, exif_orientation(im))


def sidecar_path(photo: Path) -> Path:
    """Where the CLI looks for a local photo's overrides: `<photo file name>.autocrop.json` beside it."""
    return photo.with_name(photo.name + SIDECAR_SUFFIX)


def crop_version(inputs: Mapping[str, Any]) -> str:
    """The version of a photo's crops: a digest of everything that made them (the photo's
    identity, the overrides, the models, the output settings), so the same inputs give the
    same version (a duplicate job writes the same URLs) and any change gives a new one."""
    import hashlib  # here: an analysis never needs it (a process's first answer is quicker)

    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:VERSION_DIGITS]


__all__ = [
    "METADATA_FOCUS",
    "METADATA_KEEP",
    "MIN_BOX_SIDE",
    "SIDECAR_SUFFIX",
    "Overrides",
    "box_fits",
    "box_pixels",
    "crop_version",
    "photo_size",
    "sidecar_path",
]
