"""The `autocrop` command line: crop photos (files or folders) or write their saliency maps.

    autocrop crop PATH... --ratio W:H [--ratio ...] [--size WxH [--no-upscale]] [-o DIR] [--json]
                          [--debug DIR] [--jobs N] [--format jpeg|png|webp] [--quality Q]
    autocrop saliency PATH... --out DIR

The commands that call AWS (`url`, `backfill`, `override`, `rotate-url-key`) are the
project checkout's `python -m infra.cli`: the engine imports nothing outside itself.
`autocrop url`, `autocrop backfill` and `autocrop override` answer a one-line pointer there
(exit 2).

A bad file is reported on stderr (and as a JSON error line with --json) and the batch goes
on; a run ends with a count of done / failed / skipped (files in the folders that are not
images by name) and where the files went. Exit status: 0 all done, 1 some files failed,
2 bad usage or no input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .batch import (  # noqa: F401  (SAMPLE_PHOTOS, load_models_quietly: part of the CLI's surface)
    SAMPLE_PHOTOS,
    find_images,
    load_models_quietly,
    progress,
    report,
    run_batch,
    run_safely,
    sample_photos,
    skipped_files,
)
from .errors import AutocropError, InvalidOptionsError
from .job import OutputSpec, crop_file_name, run_job
from .options import DEFAULT_RATIOS, CropOptions, parse_size, ratio_of_size, size_is_of_ratio
from .overrides import Overrides, photo_size, sidecar_path

EXIT_OK, EXIT_USAGE = 0, 2
#: Commands that call AWS, now `python -m infra.cli <command>` (not importable from here).
MOVED = ("url", "backfill", "override")
MOVED_TO = "python -m infra.cli"


@dataclass(frozen=True)
class CropJob:
    """What `crop` does to each file (picklable, for --jobs)."""

    options: CropOptions
    spec: OutputSpec
    out_dir: Path | None
    debug_dir: Path | None
    #: Each file's overrides (its sidecar, then the flags), by path; files without any are absent.
    overrides: dict[str, Overrides] | None = None


def crop_one(job: CropJob, path: Path, stem: str) -> dict[str, Any]:
    """Run the job on one file, write its crops and debug view; the JSON line for it."""
    given = (job.overrides or {}).get(str(path))
    done = run_job(path.read_bytes(), given.apply(job.options) if given else job.options, job.spec)
    line: dict[str, Any] = {"image": str(path), **done.manifest(), **({"overrides": given.to_json()} if given else {})}
    entries = {entry["ratio"]: entry for entry in line["crops"]}
    if job.out_dir is not None:
        for crop, out in done.rendered():
            target = job.out_dir / crop_file_name(crop.ratio, job.spec.fmt, f"{stem}_")
            target.write_bytes(out.data)
            entries[crop.ratio]["file"] = str(target)
    if job.debug_dir is not None and done.debug_png is not None:
        target = job.debug_dir / f"{stem}_debug.png"
        target.write_bytes(done.debug_png)
        line["debug"] = str(target)
    return line


def _crop_worker(job: CropJob, path: Path, stem: str) -> dict[str, Any]:
    return run_safely(lambda p, s: crop_one(job, p, s), path, stem)


def _options_from_args(args: argparse.Namespace) -> tuple[CropOptions, tuple[int, int] | None]:
    """CropOptions and output size from the crop subcommand's arguments."""
    size = parse_size(args.size) if args.size else None
    # Each --ratio may hold several ("1:1,16:9"); repeats are merged (CropOptions keeps one of each).
    named = [r.strip() for arg in args.ratio or () for r in arg.split(",") if r.strip()]
    ratios = tuple(dict.fromkeys(named)) or None
    if size is not None:
        if ratios is None:
            ratios = (ratio_of_size(size),)
        elif len(ratios) != 1 or not size_is_of_ratio(size, ratios[0]):
            raise InvalidOptionsError(f"--size {args.size} needs exactly one --ratio of the same shape")
    focal = None
    if args.focal_point:
        try:
            fx, fy = (float(v) for v in args.focal_point.split(","))
        except ValueError as e:
            raise InvalidOptionsError(f"--focal-point is 'X,Y' in 0..1, got {args.focal_point!r}") from e
        focal = (fx, fy)
    return CropOptions(ratios=ratios or DEFAULT_RATIOS, focal_point=focal), size


def file_overrides(paths: Sequence[Path], flags: Overrides) -> dict[str, Overrides]:
    """Each file's overrides: its sidecar (`<file>.autocrop.json`), with the flags over it;
    InvalidOptionsError naming the file when a sidecar is malformed or a box does not have its
    ratio's shape on the photo."""
    found: dict[str, Overrides] = {}
    for path in paths:
        sidecar = sidecar_path(path)
        try:
            given = Overrides.from_text(sidecar.read_bytes()).merged(flags) if sidecar.is_file() else flags
            if given.boxes:
                given.check_fits(*photo_size(path.read_bytes()))
        except InvalidOptionsError as e:
            where = f"{sidecar}" if sidecar.is_file() else f"{path}"
            raise InvalidOptionsError(f"{where}: {e}") from e
        except AutocropError as e:  # not a photo: its own error line says so when it is cropped
            logging.getLogger(__name__).debug("%s: box overrides not checked: %s", path, e)
        if not given.is_empty:
            found[str(path)] = given
    return found


def cmd_crop(args: argparse.Namespace) -> int:
    try:
        options, size = _options_from_args(args)
        spec = OutputSpec(size=size, fmt=args.format, quality=args.quality, no_upscale=args.no_upscale,
                          render=args.output is not None, debug=args.debug is not None,
                          render_threads=1 if args.jobs > 1 else None)  # fmt: skip
    except InvalidOptionsError as e:
        print(f"autocrop: {e}", file=sys.stderr)
        return EXIT_USAGE
    paths = find_images(args.paths) + (sample_photos() if args.samples else [])
    if not paths:
        hint = " (--samples needs scikit-image or matplotlib installed)" if args.samples else ""
        print(f"autocrop: no images found in the given paths{hint}", file=sys.stderr)
        return EXIT_USAGE
    try:  # every file's overrides are checked before any is cropped: a bad one changes nothing
        overrides = file_overrides(paths, Overrides.from_flags(args.focal_point, args.keep or (), args.box or ()))
    except InvalidOptionsError as e:
        print(f"autocrop: {e}", file=sys.stderr)
        return EXIT_USAGE
    for folder in (args.output, args.debug):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    job = CropJob(options, spec, args.output, args.debug, overrides)
    lines = run_batch(_crop_worker, job, paths, args.jobs)
    where = [f"crops written to {args.output}/" if args.output is not None
             else "no crop files written, only their boxes: add -o DIR to write the crops"]  # fmt: skip
    if args.debug is not None:
        where.append(f"debug views written to {args.debug}/")
    return report(progress(lines, len(paths), "crop"), args.json, skipped_files(args.paths), "; ".join(where))


def saliency_one(out_dir: Path, path: Path, stem: str) -> dict[str, Any]:
    """Write the saliency map of one photo as an 8-bit PNG the size of the upright photo."""
    import cv2
    import numpy as np

    from .decode import decode
    from .engine import predict_saliency
    from .saliency import load_saliency

    decoded = decode(path.read_bytes())
    sal = predict_saliency(decoded.rgb, load_saliency())
    small = np.clip(np.rint(sal * 255), 0, 255).astype(np.uint8)
    full = cv2.resize(small, (decoded.width, decoded.height), interpolation=cv2.INTER_LINEAR)
    target = out_dir / f"{stem}.png"
    if not cv2.imwrite(str(target), full):
        raise OSError(f"could not write {target}")
    return {"image": str(path), "saliency": str(target), "width": decoded.width, "height": decoded.height}


def _saliency_worker(out_dir: Path, path: Path, stem: str) -> dict[str, Any]:
    return run_safely(lambda p, s: saliency_one(out_dir, p, s), path, stem)


def cmd_saliency(args: argparse.Namespace) -> int:
    paths = find_images(args.paths)
    if not paths:
        print("autocrop: no images found in the given paths", file=sys.stderr)
        return EXIT_USAGE
    args.out.mkdir(parents=True, exist_ok=True)
    lines = run_batch(_saliency_worker, args.out, paths, args.jobs)
    return report(progress(lines, len(paths), "saliency"), args.json, skipped_files(args.paths),
                  f"maps written to {args.out}/")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autocrop", description="Automatic image cropping.")
    sub = parser.add_subparsers(dest="command", required=True)

    crop = sub.add_parser("crop", help="crop photos to one or more aspect ratios")
    crop.add_argument("paths", nargs="*", metavar="PATH", help="image files or folders")
    crop.add_argument(
        "--samples", action="store_true", help="also crop the sample photos that scikit-image and matplotlib ship"
    )
    crop.add_argument(
        "--ratio",
        action="append",
        metavar="W:H",
        help=f"aspect ratio, repeatable (default: {' '.join(DEFAULT_RATIOS)})",
    )
    crop.add_argument("--size", metavar="WxH", help="resize each crop to exactly this size")
    crop.add_argument(
        "--no-upscale",
        action="store_true",
        help="never enlarge: a crop smaller than --size keeps its own resolution "
        "(the size's ratio); without it such crops are enlarged and say upscaled",
    )
    crop.add_argument("-o", "--output", type=Path, metavar="DIR", help="write crops here")
    crop.add_argument("--format", default="jpeg", help="jpeg (default), png or webp")
    crop.add_argument("--quality", type=int, default=85, help="JPEG/WebP quality (default 85)")
    crop.add_argument("--focal-point", metavar="X,Y", help="point to centre on, fractions 0..1")
    crop.add_argument(
        "--keep",
        action="append",
        metavar="X,Y,W,H",
        help="a region every crop must contain (fractions 0..1), repeatable",
    )
    crop.add_argument("--box", action="append", metavar="W:H=X,Y,W,H",
                      help="the exact crop of a ratio (fractions 0..1 of the photo, of the ratio's shape), "
                           "repeatable; a sidecar FILE.autocrop.json beside a photo holds its own "
                           '(JSON {"focal_point": [x, y], "keep": [[x, y, w, h]], "boxes": {"W:H": [x, y, w, h]}}), '
                           "and flags win over it")  # fmt: skip
    crop.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    crop.add_argument("--debug", type=Path, metavar="DIR", help="write debug views here")
    crop.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes")
    crop.set_defaults(func=cmd_crop)

    sal = sub.add_parser("saliency", help="write saliency maps as 8-bit PNGs")
    sal.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    sal.add_argument("--out", type=Path, required=True, metavar="DIR", help="write DIR/<stem>.png")
    sal.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    sal.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes")
    sal.set_defaults(func=cmd_saliency)

    for name in MOVED:
        sub.add_parser(name, add_help=False, help=f"moved: {MOVED_TO} {name} (in the project checkout)")
    return parser


def moved(command: str) -> int:
    """`autocrop url|backfill|override`: the commands that call AWS left the engine."""
    print(f"autocrop: {command} moved: run `{MOVED_TO} {command} ...` in the project checkout "
          "(the commands that call AWS live in infra/, apart from the engine)", file=sys.stderr)  # fmt: skip
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `autocrop` console script."""
    logging.basicConfig(level=logging.WARNING, format="autocrop: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in MOVED:
        return moved(argv[0])
    args = build_parser().parse_args(argv)
    if getattr(args, "jobs", 1) < 1:
        print("autocrop: --jobs must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
