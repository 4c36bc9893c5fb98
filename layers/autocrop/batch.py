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
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            )
        else:
            found.append(path)  # a missing or odd file is reported when it is read
    return found


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
    """Build the saliency model now, keeping LiteRT's banner off the terminal.

    LiteRT's C++ logger prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on
    the process's stderr when the interpreter is built, which would land in the middle of
    the progress bar. The model is built here, before the bar starts, with file descriptor
    2 captured; everything else written there meanwhile (a fallback warning) is passed on.
    """
    import os
    import tempfile

    from .saliency import load_saliency

    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            load_saliency()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if "XNNPACK delegate" not in line:
                    sys.stderr.write(line)


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


def report(lines: Iterator[dict[str, Any]], as_json: bool) -> int:
    """Print each result (JSON line or a short summary) and return the exit status."""
    failed = 0
    for line in lines:
        if "error" in line:
            failed += 1
            print(f"autocrop: skipped {line['image']}: {line['error']}", file=sys.stderr)
        elif not as_json:
            crops = ", ".join(f"{c['ratio']} {c['box']}" for c in line.get("crops", []))
            print(f"{line['image']}: {crops or line.get('saliency', '')}")
        if as_json:
            print(json.dumps(line), flush=True)
    return EXIT_FAILED if failed else EXIT_OK
