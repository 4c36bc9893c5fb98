"""How many threads the engine's native work may use in this process.

The cores this process may run on (`os.sched_getaffinity`: what taskset, a container's cpuset
or Lambda grants; Lambda shows two vCPUs up to 3,008 MB), unless AUTOCROP_THREADS says
otherwise: the CLI's worker processes set it to 1 (parallelism comes from the processes), a
benchmark pins it. It sizes LiteRT's saliency interpreter, OpenCV's pool for YuNet (set when
the face model loads) and `render_crops`' encode threads. Measured on a 12 MP crowd, two cores:
analysis 252 ms with one thread, 198 ms with two (faces 134 -> 91 ms, saliency 21 -> 14 ms).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

THREADS_ENV = "AUTOCROP_THREADS"


def default_threads() -> int:
    """AUTOCROP_THREADS when set to a positive integer, else the cores this process may use."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            log.warning("ignoring %s=%r: not an integer", THREADS_ENV, value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


__all__ = ["THREADS_ENV", "default_threads"]
