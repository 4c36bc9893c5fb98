"""Running a command over many photos: finding them, worker processes, progress, reports.

A bad file becomes an error record and the batch goes on; results come in input order.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .errors import AutocropError

log = logging.getLogger(__name__)
EXIT_OK, EXIT_FAILED = 0, 1

#: File name extensions picked up when a folder is given.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp", ".heic", ".heif", ".avif"}
)
#: Photos that installed packages ship (scikit-image, matplotlib): `crop --samples` uses them.
SAMPLE_PHOTOS = (
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/rocket.jpg"),
    ("skimage", "data/motorcycle_left.png"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)


def find_images(paths: Sequence[str]) -> list[Path]:
    """Files as given, folders expanded (recursively) to the images inside, in sorted order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)  # a missing or odd file is reported when it is read
    return found


def skipped_files(paths: Sequence[str]) -> list[Path]:
    """The files inside the given folders that `find_images` leaves out (not images by name)."""
    return [
        p
        for raw in paths
        if Path(raw).is_dir()
        for p in sorted(Path(raw).rglob("*"))
        if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES
    ]


def sample_photos() -> list[Path]:
    """The sample photos of SAMPLE_PHOTOS whose package is installed (without importing it)."""
    import importlib.util

    found = []
    for package, relative in SAMPLE_PHOTOS:
        spec = importlib.util.find_spec(package)
        for root in (spec.submodule_search_locations or []) if spec else []:
            path = Path(root) / relative
            if path.is_file():
                found.append(path)
                break
    return found


def unique_stem(path: Path, taken: set[str]) -> str:
    """The file's stem, suffixed -2, -3... when another input in the batch already used it."""
    stem, n = path.stem, 1
    while stem in taken:
        n += 1
        stem = f"{path.stem}-{n}"
    taken.add(stem)
    return stem


def run_safely(task: Callable[[Path, str], dict[str, Any]], path: Path, stem: str) -> dict[str, Any]:
    """Run one file's task; turn an expected failure into an error record."""
    try:
        return task(path, stem)
    except (AutocropError, OSError) as e:
        return {"image": str(path), "error": f"{type(e).__name__}: {e}"}
    except Exception as e:  # a batch must survive one bad file, even one that trips a bug
        log.exception("unexpected failure on %s", path)
        return {"image": str(path), "error": f"internal error ({type(e).__name__}: {e})"}


def load_models_quietly() -> None:
    """Build the saliency model now, before a progress bar starts, so that whatever loading
    writes to stderr (a fallback warning) comes before the bar, not inside it. LiteRT's
    banner is kept off by `autocrop.litert`."""
    from .saliency import load_saliency

    load_saliency()


def init_worker() -> None:
    """Each worker process uses one core: parallelism comes from the processes."""
    import os

    import cv2

    from .threads import THREADS_ENV

    os.environ[THREADS_ENV] = "1"
    cv2.setNumThreads(1)
    load_models_quietly()


def run_batch(
    worker: Callable[[Any, Path, str], dict[str, Any]],
    job: Any,
    paths: list[Path],
    jobs: int,
) -> Iterator[dict[str, Any]]:
    """Results in input order; with jobs > 1 files are processed in worker processes."""
    taken: set[str] = set()
    stems = [unique_stem(p, taken) for p in paths]
    if jobs <= 1 or len(paths) <= 1:
        for p, s in zip(paths, stems):
            yield worker(job, p, s)
        return
    # "spawn": forking a process whose OpenCV and LiteRT threads already run can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=init_worker) as pool:
        yield from pool.map(worker, [job] * len(paths), paths, stems)


def progress(items: Iterator[dict[str, Any]], total: int, desc: str) -> Iterator[dict[str, Any]]:
    """A progress bar on stderr for batches (more than one file)."""
    if total < 2:
        return items
    from tqdm import tqdm

    load_models_quietly()  # before the bar: LiteRT's banner would land in it

    return iter(tqdm(items, total=total, desc=desc, unit="img", file=sys.stderr))


def report(lines: Iterator[dict[str, Any]], as_json: bool, skipped: Sequence[Path] = (), closing: str = "") -> int:
    """Print each result (a JSON line, or a line saying what was done), then a count of
    done / failed / skipped and `closing` (where the files went); return the exit status.

    Lines go through `tqdm.write`, which clears a running progress bar first and redraws it
    after, so no line is ever glued to the bar."""
    from tqdm import tqdm

    done = failed = 0
    for line in lines:
        if "error" in line:
            failed += 1
            tqdm.write(f"autocrop: failed {line['image']}: {line['error']}", file=sys.stderr)
        else:
            done += 1
            if not as_json:
                crops = "; ".join(describe_crop(c) for c in line.get("crops", []))
                tqdm.write(f"{line['image']}: {crops or line.get('saliency', '')}", file=sys.stdout)
        if as_json:
            tqdm.write(json.dumps(line), file=sys.stdout)
        sys.stdout.flush()
    counts = [f"{done} done", f"{failed} failed" + (" (each with its reason above)" if failed else "")]
    names = ", ".join(p.name for p in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
    counts.append(f"{len(skipped)} skipped" + (f" (not images by name: {names}; name a file to try it "
                                                "anyway)" if skipped else ""))  # fmt: skip
    tqdm.write(f"autocrop: {', '.join(counts)}" + (f"; {closing}" if closing else ""), file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def describe_crop(crop: dict[str, Any]) -> str:
    """One crop of a result line as text: ratio, box, the file written and its size, and
    whether it was enlarged to reach that size."""
    text = f"{crop['ratio']} {crop['box']}"
    if "file" in crop:
        text += f" -> {crop['file']}"
    if "size" in crop:
        width, height = crop["size"]
        enlarged = f", enlarged from {crop['box'][2]}x{crop['box'][3]}: --no-upscale keeps the photo's pixels"
        text += f" ({width}x{height}{enlarged if crop.get('upscaled') else ''})"
    return text
